"""Wiring: settings → store, carriers, handlers, servicer (and the runner, consumers and jobs beside it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.logistics.v1 import logistics_pb2_grpc
from services.kit.clock import Clock, SystemClock
from services.kit.consumer import EventConsumer
from services.kit.leader import Leadership
from services.kit.runtime import Runtime
from services.kit.sealing import KeyRing
from services.logistics import consumers, jobs, mappers
from services.logistics.carriers.gateway import CarrierGateway
from services.logistics.config import Settings
from services.logistics.domain.carriers import BreakerState
from services.logistics.grpc_api import LogisticsServicer
from services.logistics.handlers import waybills
from services.logistics.handlers.tracking import TrackingPoller
from services.logistics.handlers.waybills import WaybillRunner
from services.logistics.store import LogisticsUnitOfWork
from services.logistics.views import LogisticsViews

log = logging.getLogger(__name__)


def unit_of_work(
    engine: AsyncEngine, keys: KeyRing, clock: Clock | None = None
) -> Callable[[], LogisticsUnitOfWork]:
    """New units of work on the engine, publishing the events the use cases emit."""

    def new_uow() -> LogisticsUnitOfWork:
        return LogisticsUnitOfWork(engine, keys, clock, mappers.event_message)

    return new_uow


def _logged(done: asyncio.Task[bool]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("a carrier breaker change was not recorded: %r", done.exception())


def breaker_recorder(new_uow: Callable[[], LogisticsUnitOfWork]) -> Callable[[str, BreakerState], None]:
    """purgatory's hooks are plain calls: each change is recorded (and an opening alerted) in a task,
    one after the other, so the last state recorded is the last state reached."""
    chain: list[asyncio.Task[bool]] = []

    async def record(previous: asyncio.Task[bool] | None, carrier: str, state: BreakerState) -> bool:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        return await waybills.record_breaker(new_uow(), carrier, state)

    def changed(carrier: str, state: BreakerState) -> None:
        previous = chain[-1] if chain else None
        task = asyncio.get_running_loop().create_task(record(previous, carrier, state))
        task.add_done_callback(_logged)
        chain[:] = [task]

    return changed


@dataclass
class Logistics:
    """The servicer to serve, what runs beside it, and what to close after serving."""

    servicer: LogisticsServicer
    runner: WaybillRunner
    poller: TrackingPoller
    carriers: CarrierGateway
    close: Callable[[], Awaitable[None]]

    def register(self, server: grpc.aio.Server) -> None:
        logistics_pb2_grpc.add_LogisticsServiceServicer_to_server(self.servicer, server)


async def assemble(settings: Settings, engine: AsyncEngine, clock: Clock | None = None) -> Logistics:
    """Everything but the background loops: what the tests serve on their own database."""
    clock = clock or SystemClock()
    new_uow = unit_of_work(engine, settings.keys, clock)
    carriers = CarrierGateway(settings.carriers, breaker_recorder(new_uow))
    await carriers.start()
    runner = WaybillRunner(
        new_uow,
        carriers,
        settings.retry,
        lease=timedelta(seconds=settings.lease_seconds),
        capacity=settings.capacity,
        docks=settings.docks,
    )
    poller = TrackingPoller(new_uow, carriers, settings.poll, settings.anomalies)
    servicer = LogisticsServicer(
        new_uow,
        LogisticsViews(engine, settings.keys),
        carriers,
        rules=settings.anomalies,
        poll=settings.poll,
        on_queued=runner.wake.set,
        push_writers=settings.push_writers,
        docks=settings.docks,
    )
    return Logistics(servicer, runner, poller, carriers, carriers.close)


async def build(settings: Settings, runtime: Runtime, clock: Clock | None = None) -> Logistics:
    """The service as it runs: the waybill runner (on the replica that leads it), the consumer of
    cancelled orders, the tracking poll and the anomaly sweep."""
    clock = clock or SystemClock()
    logistics = await assemble(settings, runtime.engine, clock)
    leadership = Leadership(runtime.engine, "oms-job:logistics:waybill-runner")

    async def run_waybills(stop: asyncio.Event) -> None:
        try:
            await logistics.runner.run(stop, settings.runner_seconds, leadership.lead)
        finally:
            await leadership.release()

    runtime.spawn("waybill runner", run_waybills)
    name = "logistics-orders-cancelled"
    consumer = EventConsumer(
        runtime.js,
        runtime.engine,
        name=name,
        subject_prefix=settings.common.subject_prefix,
        subject="orders.cancelled",
        handler=consumers.on_order_cancelled(settings.keys, clock),
        streams=settings.common.streams,
    )
    runtime.consume(consumer)
    # a held or frozen order stops the warehouse; its release lets it go on (one consumer, in order)
    for name, subject, handler in (
        ("logistics-orders-held", "orders.held", consumers.on_order_held(settings.keys, clock)),
        ("logistics-orders-frozen", "orders.exception", consumers.on_order_held(settings.keys, clock)),
        ("logistics-orders-released", "orders.released", consumers.on_order_released(settings.keys, clock)),
    ):
        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name=name,
            subject_prefix=settings.common.subject_prefix,
            subject=subject,
            handler=handler,
            streams=settings.common.streams,
        )
        runtime.consume(consumer)
    runtime.every(
        "tracking poll",
        settings.poll_every_seconds,
        lambda: jobs.poll_tracking(logistics.poller),
        one_replica=True,
    )
    runtime.every(
        "anomaly sweep",
        settings.sweep_every_seconds,
        lambda: jobs.sweep_anomalies(logistics.poller),
        one_replica=True,
    )
    return logistics
