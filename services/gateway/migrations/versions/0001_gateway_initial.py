"""The gateway's own data: the audit log (append-only, kept at least 180 days), webhook receipts
(a sender's retry gets the first answer), and the kit tables (inbox for the alerts consumer).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.kit.schema import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.String(36), primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("principal_kind", sa.String(16), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("target_ids", postgresql.ARRAY(sa.String(128)), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("audit_log_at", "audit_log", ["at", "audit_id"])
    op.create_index("audit_log_principal", "audit_log", ["principal", "at"])
    op.create_index("audit_log_trace", "audit_log", ["trace_id"])
    op.create_index("audit_log_targets", "audit_log", ["target_ids"], postgresql_using="gin")
    # Records are never rewritten, and never deleted before 180 days (PIPL: at least six months),
    # whatever a purge job or a person with SQL access asks for.
    op.execute(
        "CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'audit_log is append-only'; END IF;"
        " IF OLD.at > now() - interval '180 days' THEN"
        " RAISE EXCEPTION 'audit records younger than 180 days are kept'; END IF;"
        " RETURN OLD; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_guard()"
    )
    op.create_table(
        "webhook_receipts",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("sender", sa.String(32), primary_key=True),
        sa.Column("body_sha256", sa.String(64), primary_key=True),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_log_guard()")
    drop_kit_tables(op)
