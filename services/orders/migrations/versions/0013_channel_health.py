"""Channel connections and their health: the merchant's app on each channel (secret and tokens sealed),
the poll cursor, the rolling window of API calls, open alerts; indexes for a channel's last order and
its recent payload sizes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "channel_connections",
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("api_url", sa.Text, nullable=False),
        sa.Column("app_key", sa.String(128), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("sealed_secret", sa.Text, nullable=False),
        sa.Column("sealed_refresh_token", sa.Text, nullable=False),
        sa.Column("sealed_access_token", sa.Text),
        sa.Column("token_expires_at", TZ),
        sa.Column("token_lifetime_s", sa.Integer, nullable=False, server_default="86400"),
        sa.Column("refresh_failed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("refresh_error", sa.Text, nullable=False, server_default=""),
        sa.Column("poll_cursor", TZ),
        sa.Column("last_poll_at", TZ),
        sa.Column("last_poll_error", sa.Text, nullable=False, server_default=""),
        sa.Column("calls", JSONB, nullable=False, server_default="[]"),
        sa.Column("open_alerts", ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("connected_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("orders_channel_created", "orders", ["channel", "created_at"])
    op.create_index("channel_payloads_received", "channel_payloads", ["received_at"])


def downgrade() -> None:
    op.drop_index("channel_payloads_received", table_name="channel_payloads")
    op.drop_index("orders_channel_created", table_name="orders")
    op.drop_table("channel_connections")
