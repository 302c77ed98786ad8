"""Alert records: one open record per fold key (repeats count into it), who it is routed to, its
escalation, acknowledgement and resolution; and the events folded into each (one per event id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("fold_key", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("chain", postgresql.JSONB, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("assigned_to", sa.String(80), nullable=False),
        sa.Column("escalate_after_s", sa.Integer, nullable=True),
        sa.Column("escalate_at", TZ, nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=False),
        sa.Column("acknowledged_at", TZ, nullable=True),
        sa.Column("acknowledge_note", sa.Text, nullable=False),
        sa.Column("resolved_by", sa.String(128), nullable=False),
        sa.Column("resolved_at", TZ, nullable=True),
        sa.Column("resolution", sa.Text, nullable=False),
        # the level whose assignee was told; behind `level`, a delivery is owed (lost to a crash)
        sa.Column("notified_level", sa.SmallInteger, nullable=True),
        sa.CheckConstraint("state IN ('OPEN', 'ACKNOWLEDGED', 'RESOLVED')", name="alerts_state_known"),
        sa.CheckConstraint("count >= 1", name="alerts_count_positive"),
        # only an open alert escalates
        sa.CheckConstraint("escalate_at IS NULL OR state = 'OPEN'", name="alerts_escalate_only_open"),
    )
    # one record per problem until it is resolved: the fold is an INSERT … ON CONFLICT on this index
    op.create_index(
        "alerts_one_unresolved_per_key",
        "alerts",
        ["fold_key"],
        unique=True,
        postgresql_where=sa.text("state <> 'RESOLVED'"),
    )
    # the escalation job reads only the alerts due, never the table
    op.create_index(
        "alerts_escalate_at", "alerts", ["escalate_at"], postgresql_where=sa.text("escalate_at IS NOT NULL")
    )
    # the escalations whose delivery is still owed: a handful of rows at most, read every round
    op.create_index(
        "alerts_escalation_owed",
        "alerts",
        ["alert_id"],
        postgresql_where=sa.text(
            "state = 'OPEN' AND level > 0 AND (notified_level IS NULL OR notified_level < level)"
        ),
    )
    op.create_index("alerts_last_seen", "alerts", ["last_seen", "alert_id"])
    op.create_index("alerts_state_last_seen", "alerts", ["state", "last_seen"])
    op.create_table(
        "alert_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("alert_id", sa.String(36), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("alert_events_alert", "alert_events", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alerts")
