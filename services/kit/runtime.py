"""What a running service holds: database engine, NATS connection, outbox relay and background tasks.

Scheduled jobs run on one replica only (`every(..., one_replica=True)`, `leader_only`): each holds an
advisory lock named after the job. The runtime itself runs the relay and the purge of processed
outbox rows and inbox entries, and answers readiness (database and NATS reachable).

It also serves the service's Prometheus figures on METRICS_PORT (services.kit.metrics): the
outbox report's figures, the inbox size and the database pool among them.

Shutdown order: the caller stops the gRPC server first (health NOT_SERVING, then `stop(grace)`),
then leaving the runtime stops background work, drains NATS and closes the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import bus, metrics
from services.kit.config import CommonSettings
from services.kit.consumer import EventConsumer, inbox_size, purge_inbox
from services.kit.db import make_engine
from services.kit.db_errors import is_connection_failure
from services.kit.dead_letters import DeadLetterDesk
from services.kit.leader import Leadership
from services.kit.outbox import (
    OUTBOX_REPORT_SUBJECT,
    OutboxRelay,
    outbox_report,
    outbox_state,
    purge_published,
)

log = logging.getLogger(__name__)
# how often a service's outbox depth is reported to the dashboard
OUTBOX_REPORT_SECONDS = 5.0

Background = Callable[[asyncio.Event], Awaitable[None]]
Work = Callable[[], Awaitable[object]]


class Runtime:
    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.consumers: dict[str, EventConsumer] = {}
        self._leaderships: list[Leadership] = []
        self.metrics: metrics.MetricsEndpoint | None = None

    async def __aenter__(self) -> Runtime:
        self.engine: AsyncEngine = make_engine(
            self.settings.database_url, self.settings.db_pool_size, self.settings.db_pool_overflow
        )
        metrics.FIGURES.pools[self.settings.service_name] = self.engine.sync_engine.pool
        if self.settings.metrics_port:
            try:
                self.metrics = metrics.MetricsEndpoint(self.settings.host, self.settings.metrics_port)
                log.info("metrics on port %d", self.metrics.port)
            except OSError as error:
                # the service still serves: losing its figures is better than losing its calls
                log.error(
                    "no /metrics: port %d is not free (%s); set METRICS_PORT",
                    self.settings.metrics_port,
                    error,
                )
        self.nc: NatsClient = await bus.connect(self.settings.nats_url, self.settings.service_name)
        self.js: JetStreamContext = self.nc.jetstream()
        self.relay = OutboxRelay(
            self.engine,
            self.js,
            service=self.settings.service_name,
            subject_prefix=self.settings.subject_prefix,
            streams=self.settings.streams,
        )
        self.spawn("outbox-relay", self.relay.run)
        self.every("outbox and inbox purge", self.settings.purge_every_seconds, self.purge, one_replica=True)
        self.every("outbox report", OUTBOX_REPORT_SECONDS, self.report_outbox, one_replica=True)
        # the bus's dead letters of this service's consumers, listed and replayed on request
        await DeadLetterDesk(
            self.nc,
            self.engine,
            self.settings.subject_prefix,
            self.settings.service_name,
            lambda: self.consumers,
        ).start()
        return self

    async def ready(self, within: float = 2.0) -> bool:
        """Readiness: the database answers and NATS is connected."""
        if not self.nc.is_connected:
            return False
        try:
            async with asyncio.timeout(within), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def report_outbox(self) -> None:
        """Tell the dashboard (core NATS, not kept) how many events wait in this service's outbox, and
        the metrics the same figures with the inbox's size."""
        unpublished, oldest = await outbox_state(self.engine)
        service = self.settings.service_name
        metrics.FIGURES.read_outbox(service, unpublished, oldest, await inbox_size(self.engine))
        subject = bus.full_subject(self.settings.subject_prefix, OUTBOX_REPORT_SUBJECT)
        await self.nc.publish(subject, outbox_report(service, unpublished, oldest, datetime.now(UTC)))

    async def purge(self) -> tuple[int, int]:
        """Processed outbox rows and inbox entries past their retention; returns (outbox, inbox)."""
        published = await purge_published(self.engine, self.settings.outbox_retention_seconds)
        processed = await purge_inbox(self.engine, self.settings.inbox_retention_seconds)
        if published or processed:
            log.info("purged %d published outbox rows and %d inbox entries", published, processed)
        return published, processed

    def consume(self, consumer: EventConsumer) -> None:
        """Run a JetStream consumer in the background; its dead letters are listed and replayed through
        this service's dead-letter desk (services/kit/dead_letters.py)."""
        consumer.service = consumer.service or self.settings.service_name
        self.consumers[consumer.name] = consumer
        self.spawn(consumer.name, consumer.run)

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

    def leader_only(self, name: str, work: Work) -> Callable[[], Awaitable[object | None]]:
        """`work` that runs only on the replica holding the job's lock (taken when free, confirmed
        before each run); elsewhere it does nothing."""
        leadership = Leadership(self.engine, f"oms-job:{self.settings.service_name}:{name}")
        self._leaderships.append(leadership)

        async def led() -> object | None:
            if not await leadership.lead():
                return None
            return await work()

        return led

    def every(self, name: str, seconds: float, work: Work, *, one_replica: bool = False) -> None:
        """Run `work` now and then every `seconds` until shutdown; a failed round is logged and the
        next one runs on time. With `one_replica`, only the job's leader runs it."""
        run = self.leader_only(name, work) if one_replica else work

        async def rounds(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await run()
                except Exception as error:
                    if is_connection_failure(error):
                        log.warning("%s failed: %r", name, error)
                    else:
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
        for leadership in self._leaderships:
            await leadership.release()
        try:
            await self.nc.drain()
        except Exception:
            log.warning("NATS drain failed", exc_info=True)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
        metrics.FIGURES.pools.pop(self.settings.service_name, None)
        await self.engine.dispose()
