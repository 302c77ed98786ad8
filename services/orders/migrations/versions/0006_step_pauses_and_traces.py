"""Outage pauses of a process-manager step, the order's originating trace, linked traces on the timeline.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a step waiting out a peer's outage: since when, and how many pauses (its back-off grows with them)
    op.add_column("orders", sa.Column("step_paused_since", sa.DateTime(timezone=True)))
    op.add_column("orders", sa.Column("step_pauses", sa.Integer, nullable=False, server_default="0"))
    # the peer a sleeping step waits for (cleared when the step is claimed): woken when that peer answers
    op.add_column("orders", sa.Column("step_waiting_for", sa.String(16)))
    # the W3C traceparent of the request that created the order (every step continues it), and of the
    # request that made the current step due (the step's span links to it)
    op.add_column("orders", sa.Column("traceparent", sa.String(64), nullable=False, server_default=""))
    op.add_column("orders", sa.Column("step_traceparent", sa.String(64), nullable=False, server_default=""))
    op.add_column(
        "order_timeline", sa.Column("linked_trace_id", sa.String(32), nullable=False, server_default="")
    )
    op.create_index(
        "orders_step_waiting",
        "orders",
        ["step_waiting_for"],
        postgresql_where=sa.text("step_waiting_for IS NOT NULL"),
    )
    # the stuck-order sweep reads orders by status and last change
    op.create_index("orders_by_status_changed", "orders", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("orders_by_status_changed", "orders")
    op.drop_index("orders_step_waiting", "orders")
    op.drop_column("order_timeline", "linked_trace_id")
    for name in ("step_traceparent", "traceparent", "step_waiting_for", "step_pauses", "step_paused_since"):
        op.drop_column("orders", name)
