"""Channel connections (secret and tokens sealed, each bound to its channel and what it is) and what
the orders tables say of a channel's activity: its last order, and the sizes of its recent payloads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.sealing import KeyRing
from services.orders.domain.channel_health import Call, Connection
from services.orders.store.tables import channel_connections_table as connections
from services.orders.store.tables import orders_table

_ACTIVITY = text(
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY p.size_bytes) AS p50, "
    "percentile_disc(0.99) WITHIN GROUP (ORDER BY p.size_bytes) AS p99, count(*) AS n "
    "FROM channel_payloads p JOIN orders o ON o.order_id = p.order_id "
    "WHERE p.received_at > :since AND o.channel = :channel"
)


class ChannelRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    def _seal(self, channel: str, what: str, value: str) -> str:
        return self.keys.seal(value.encode(), f"channel:{channel}:{what}")

    def _open(self, channel: str, what: str, sealed: str | None) -> str:
        return self.keys.open(sealed, f"channel:{channel}:{what}").decode() if sealed else ""

    async def connect(self, given: Sequence[Connection], now: datetime) -> None:
        """The connections the settings name: new ones inserted; a known one keeps its tokens and cursor
        (refresh tokens rotate: the stored one is newer than the settings'), unless its refresh failed
        and the settings now give another refresh token (the merchant authorised the app again). Its
        app and address follow the settings."""
        for connection in given:
            stored = await self.get(connection.channel, lock=True)
            if stored is None:
                await self.conn.execute(insert(connections).values(**self._row(connection, now)))
                continue
            stored.api_url, stored.app_key = connection.api_url, connection.app_key
            stored.app_secret, stored.shop_id = connection.app_secret, connection.shop_id
            if stored.refresh_failed and connection.refresh_token != stored.refresh_token:
                stored.refresh_token, stored.refresh_failed, stored.refresh_error = (
                    connection.refresh_token,
                    False,
                    "",
                )
            await self.save(stored, now)

    async def all(self, lock: bool = False) -> list[Connection]:
        query = select(connections).order_by(connections.c.channel)
        if lock:
            query = query.with_for_update()
        return [self._connection(row) for row in (await self.conn.execute(query)).mappings()]

    async def get(self, channel: str, lock: bool = False) -> Connection | None:
        query = select(connections).where(connections.c.channel == channel)
        if lock:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).mappings().first()
        return self._connection(row) if row is not None else None

    async def save(self, connection: Connection, now: datetime) -> None:
        values = self._row(connection, now)
        del values["connected_at"]
        await self.conn.execute(
            connections.update().where(connections.c.channel == connection.channel).values(**values)
        )

    async def activity(
        self, channel: str, since: datetime
    ) -> tuple[datetime | None, float | None, float | None]:
        """(the channel's last order, whether pushed or polled; p50 and p99 of its payloads received
        since `since`, in bytes)."""
        last = await self.conn.scalar(
            select(func.max(orders_table.c.created_at)).where(orders_table.c.channel == channel)
        )
        row = (await self.conn.execute(_ACTIVITY, {"since": since, "channel": channel})).first()
        if row is None or not row.n:
            return last, None, None
        return last, float(row.p50), float(row.p99)

    def _row(self, c: Connection, now: datetime) -> dict[str, Any]:
        return {
            "channel": c.channel,
            "api_url": c.api_url,
            "app_key": c.app_key,
            "shop_id": c.shop_id,
            "sealed_secret": self._seal(c.channel, "secret", c.app_secret),
            "sealed_refresh_token": self._seal(c.channel, "refresh", c.refresh_token),
            "sealed_access_token": self._seal(c.channel, "access", c.access_token)
            if c.access_token
            else None,
            "token_expires_at": c.token_expires_at,
            "token_lifetime_s": int(c.token_lifetime.total_seconds()),
            "refresh_failed": c.refresh_failed,
            "refresh_error": c.refresh_error,
            "poll_cursor": c.poll_cursor,
            "last_poll_at": c.last_poll_at,
            "last_poll_error": c.last_poll_error[:1000],
            "calls": [[call.at.timestamp(), call.latency_ms, call.error] for call in c.calls],
            "open_alerts": sorted(c.open_alerts),
            "connected_at": c.connected_at,
            "updated_at": now,
        }

    def _connection(self, row: Any) -> Connection:
        channel = row["channel"]
        return Connection(
            channel=channel,
            api_url=row["api_url"],
            app_key=row["app_key"],
            app_secret=self._open(channel, "secret", row["sealed_secret"]),
            refresh_token=self._open(channel, "refresh", row["sealed_refresh_token"]),
            connected_at=row["connected_at"],
            shop_id=row["shop_id"],
            access_token=self._open(channel, "access", row["sealed_access_token"]),
            token_expires_at=row["token_expires_at"],
            token_lifetime=timedelta(seconds=row["token_lifetime_s"]),
            refresh_failed=row["refresh_failed"],
            refresh_error=row["refresh_error"],
            poll_cursor=row["poll_cursor"],
            last_poll_at=row["last_poll_at"],
            last_poll_error=row["last_poll_error"],
            calls=[
                Call(datetime.fromtimestamp(at, UTC), int(ms), str(code)) for at, ms, code in row["calls"]
            ],
            open_alerts=frozenset(row["open_alerts"]),
        )
