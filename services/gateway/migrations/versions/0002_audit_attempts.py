"""Failed attempts (401/403) are audited as one record per window and key with their count.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("attempts", sa.Integer, nullable=False, server_default="1"))
    op.create_check_constraint("audit_log_attempts_positive", "audit_log", "attempts >= 1")
    op.create_index("audit_log_method", "audit_log", ["method", "at"])


def downgrade() -> None:
    op.drop_index("audit_log_method", "audit_log")
    op.drop_constraint("audit_log_attempts_positive", "audit_log")
    op.drop_column("audit_log", "attempts")
