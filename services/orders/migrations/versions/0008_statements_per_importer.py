"""Payment statements are kept per importer: a client-chosen statement id names one of the caller's own
statements, so one importer can neither claim nor read another's.

Statements imported before this revision have no known importer: they stay, under the owner '', which
no caller is (a report is rebuilt by importing its statement again).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table, key in (
        ("payment_statements", ["owner", "statement_id"]),
        ("payment_statement_rows", ["owner", "statement_id", "transaction_id"]),
    ):
        op.add_column(table, sa.Column("owner", sa.String(128), nullable=False, server_default=""))
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, key)


def downgrade() -> None:
    # two importers' statements under one id cannot share the old key; which one to drop is not ours to say
    shared = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM (SELECT statement_id FROM payment_statements "
            "GROUP BY statement_id HAVING count(*) > 1) AS ids"
        )
    )
    if shared:
        raise RuntimeError(f"{shared} statement ids are used by more than one importer: remove them first")
    for table, key in (
        ("payment_statements", ["statement_id"]),
        ("payment_statement_rows", ["statement_id", "transaction_id"]),
    ):
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, key)
        op.drop_column(table, "owner")
