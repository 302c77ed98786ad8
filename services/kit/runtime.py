"""What a running service holds: database engine, NATS connection, outbox relay and background tasks.

Shutdown order: the caller stops the gRPC server first (health NOT_SERVING, then `stop(grace)`),
then leaving the runtime stops background work, drains NATS and closes the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import bus
from services.kit.config import CommonSettings
from services.kit.db import make_engine
from services.kit.outbox import OutboxRelay

log = logging.getLogger(__name__)

Background = Callable[[asyncio.Event], Awaitable[None]]


class Runtime:
    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Runtime:
        self.engine: AsyncEngine = make_engine(self.settings.database_url)
        self.nc: NatsClient = await bus.connect(self.settings.nats_url, self.settings.service_name)
        self.js: JetStreamContext = self.nc.jetstream()
        self.relay = OutboxRelay(
            self.engine,
            self.js,
            service=self.settings.service_name,
            subject_prefix=self.settings.subject_prefix,
        )
        self.spawn("outbox-relay", self.relay.run)
        return self

    def spawn(self, name: str, work: Background) -> None:
        async def guarded() -> None:
            while not self.stop_event.is_set():
                try:
                    await work(self.stop_event)
                    return
                except Exception:
                    log.exception("background task %s crashed; restarting", name)
                    await asyncio.sleep(1.0)

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    def every(self, name: str, seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work` now and then every `seconds` until shutdown; a failed round is logged and the
        next one runs on time."""

        async def rounds(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await work()
                except Exception:
                    log.exception("%s failed", name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=seconds)

        self.spawn(name, rounds)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_event.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
        try:
            await self.nc.drain()
        except Exception:
            log.warning("NATS drain failed", exc_info=True)
        await self.engine.dispose()
