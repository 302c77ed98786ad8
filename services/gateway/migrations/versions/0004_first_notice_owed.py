"""Alert records whose first notice is still owed (its delivery failed, or the process died with it in
flight), for the escalation job's round.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "alerts_first_notice_owed",
        "alerts",
        ["first_seen"],
        postgresql_where=sa.text("state = 'OPEN' AND level = 0 AND notified_level IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("alerts_first_notice_owed", table_name="alerts")
