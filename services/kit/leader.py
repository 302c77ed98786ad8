"""Leadership by a Postgres advisory lock: one replica at a time does a named piece of work.

The lock is session-level, held on a dedicated connection. When that connection dies (a Postgres
restart, `pg_terminate_backend`, a network cut) the lock is gone at once and a standby may take it,
so the holder checks its connection before each round of work and stops when it cannot confirm it;
asyncpg's termination callback tells it as soon as the server closes the session. A lost lock is
taken again (with its LISTEN) when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    return zlib.crc32(name.encode())


class Leadership:
    """The lock `name` (taken when free, kept until `release` or a lost connection), optionally with a
    LISTEN on `listen` that calls `on_notify`; a standby keeps its connection to try again cheaply."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        listen: str | None = None,
        on_notify: Callable[[], None] | None = None,
        check_timeout_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.listen = listen
        self.on_notify = on_notify
        self.check_timeout = check_timeout_seconds
        self.lost = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._held = False
        self._warned = False

    @property
    def held(self) -> bool:
        return self._held and not self.lost.is_set()

    async def lead(self) -> bool:
        """True when this process holds the lock now: confirmed on its connection, or just taken."""
        if self._held:
            if await self._confirmed():
                return True
            # not taken again in the same breath: the caller stops first, then competes anew
            await self._drop(f"lost leadership of {self.name}; stopping until it is taken again")
            return False
        return await self._try_take()

    async def wait_to_lead(self, stop: asyncio.Event, retry_seconds: float = 2.0) -> bool:
        """Until this process leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            if await self.lead():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
        return False

    async def release(self) -> None:
        if self._conn is not None and self._held and not self.lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._conn.execute(select(func.pg_advisory_unlock(self.key))), self.check_timeout
                )
        await self._close()
        self._held = False

    async def _try_take(self) -> bool:
        try:
            if self._conn is None:
                self._conn = await self._connect()
            taken = bool(
                await asyncio.wait_for(
                    self._conn.scalar(select(func.pg_try_advisory_lock(self.key))), self.check_timeout
                )
            )
            if taken and self.listen:
                raw = (await self._conn.get_raw_connection()).driver_connection
                await raw.add_listener(self.listen, lambda *_: self.on_notify and self.on_notify())  # type: ignore[union-attr]
        except Exception as error:
            # the database is away: say so once per outage, not once per retry
            if not self._warned:
                log.warning("cannot reach the database to lead %s: %r", self.name, error)
                self._warned = True
            await self._close()
            return False
        self._warned = False
        if taken:
            self._held = True
            self.lost.clear()
            log.info("leading %s", self.name)
        return taken

    async def _connect(self) -> AsyncConnection:
        conn = await self.engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = (await conn.get_raw_connection()).driver_connection
        raw.add_termination_listener(lambda *_: self.lost.set())  # type: ignore[union-attr]
        self.lost.clear()
        return conn

    async def _confirmed(self) -> bool:
        if self._conn is None or self.lost.is_set():
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self.check_timeout)
        except Exception:
            return False
        return True

    async def _drop(self, why: str) -> None:
        log.warning(why)
        self._held = False
        self.lost.set()
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            # closed, never pooled: a pooled session would keep any lock it still holds
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()
