"""The async SQLAlchemy engine on asyncpg and the unit of work that rolls back unless committed."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import sqlalchemy.exc
from google.protobuf.message import Message
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.kit import outbox, tracing
from services.kit.clock import Clock, SystemClock


def async_url(url: str) -> str:
    """Accept the plain postgres:// URLs operators write and pick the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


# a pooled connection idle for longer than this is pinged before it is handed out
PING_IDLE_SECONDS = 1.0


def make_engine(url: str, pool_size: int = 20, max_overflow: int | None = None) -> AsyncEngine:
    """`max_overflow`: connections opened past `pool_size` in a burst (and closed again after it);
    None: as many again as the pool."""
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
        # an error's text (logged, or raised into a traceback) never carries the statement's values
        hide_parameters=True,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """After a Postgres restart every pooled connection is dead, and without a ping the first call on
    each would fail. A ping on every checkout (`pool_pre_ping`) is a round trip per transaction,
    though: under load a connection goes back and out again within milliseconds, and nothing can have
    restarted in between. So only a connection that sat idle for a while is pinged; a dead one is
    replaced before the caller sees it (SQLAlchemy's pessimistic disconnect handling, by event)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            alive = engine.sync_engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            raise sqlalchemy.exc.DisconnectionError("a pooled connection did not answer its ping")


class UnitOfWork:
    """One transaction: changes and the events they cause commit together, or not at all.

    It holds a Core connection (not an ORM session): the services write SQL, and the ORM's
    bookkeeping cost several times the statements' own time on the order path.
    """

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self.clock: Clock = clock or SystemClock()
        self._events: list[dict[str, Any]] = []
        self._committed = False

    @classmethod
    def joined(cls, conn: AsyncConnection, clock: Clock | None = None) -> UnitOfWork:
        """A unit of work inside a transaction someone else owns (a consumer's inbox transaction):
        call `flush_events` before the owner commits; never enter or commit it."""
        uow = cls(conn.engine, clock)
        uow.conn = conn
        return uow

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def __aenter__(self) -> UnitOfWork:
        self._span = tracing.transaction_span()
        self.conn: AsyncConnection = await self._engine.connect()
        await self.conn.begin()
        self._events = []
        self._committed = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self._committed:
                await self.conn.rollback()
        finally:
            await self.conn.close()
            tracing.end_transaction(self._span, self._committed)

    async def lock_timeout(self, milliseconds: int) -> None:
        """For the rest of this transaction, a statement waiting longer than this for a lock fails
        (Postgres' `lock_timeout`, set LOCAL: the connection goes back to the pool without it)."""
        await self.conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(milliseconds)}ms'")

    def publish(self, subject: str, event: Message) -> str:
        """Queue an event for the outbox; it is written in this transaction and sent only after commit."""
        row = outbox.event_row(subject, event, self.clock.now())
        self._events.append(row)
        return str(row["event_id"])

    async def flush_events(self) -> None:
        """Write queued events now, e.g. before taking a hot row lock, so the lock is held briefly."""
        if self._events:
            await self.conn.execute(outbox.outbox_table.insert(), self._events)
            self._events = []

    async def commit(self) -> None:
        await self.flush_events()
        await self.conn.commit()
        self._committed = True

    async def rollback(self) -> None:
        self._events = []
        await self.conn.rollback()
