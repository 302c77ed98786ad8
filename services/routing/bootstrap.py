"""Wiring: settings → store, peers, handlers, servicer (and the consumers and jobs beside it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.routing.v1 import routing_pb2_grpc
from services.kit import grpc_client, identity
from services.kit.clock import Clock, SystemClock
from services.kit.consumer import EventConsumer
from services.kit.runtime import Runtime
from services.routing import consumers, jobs, mappers
from services.routing.config import Settings
from services.routing.grpc_api import RoutingServicer
from services.routing.handlers import rule_sets
from services.routing.handlers.ports import StockSource
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.peers import InventoryStock
from services.routing.store import RoutingUnitOfWork
from services.routing.views import RoutingViews

STOCK_SUBJECTS = ("inventory.back_in_stock", "inventory.adjusted")


def unit_of_work(engine: AsyncEngine, clock: Clock | None = None) -> Callable[[], RoutingUnitOfWork]:
    """New units of work on the engine, publishing the events the use cases emit."""

    def new_uow() -> RoutingUnitOfWork:
        return RoutingUnitOfWork(engine, clock, mappers.event_message)

    return new_uow


def servicer(
    engine: AsyncEngine, cache: RuleSetCache, stock: StockSource, clock: Clock | None = None
) -> RoutingServicer:
    return RoutingServicer(unit_of_work(engine, clock), RoutingViews(engine), cache, stock)


@dataclass(frozen=True)
class Routing:
    """The servicer to serve, and what to close after serving."""

    servicer: RoutingServicer
    close: Callable[[], Awaitable[None]]

    def register(self, server: grpc.aio.Server) -> None:
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(self.servicer, server)


async def build(settings: Settings, runtime: Runtime, clock: Clock | None = None) -> Routing:
    """Everything routing runs in this process: the default rule set in place, the consumers of stock
    arrivals, the cache dropped on every replica when rules change, the parked retry job, the servicer."""
    clock = clock or SystemClock()
    new_uow = unit_of_work(runtime.engine, clock)
    await rule_sets.ensure_default_rules(new_uow())
    cache = RuleSetCache()
    channel = grpc_client.channel(
        settings.inventory_address, identity=identity.own_identity(settings.common.identity)
    )
    stock = InventoryStock(channel)
    prefix = settings.common.subject_prefix
    for subject in STOCK_SUBJECTS:
        name = "routing-" + subject.replace(".", "-")
        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name=name,
            subject_prefix=prefix,
            subject=subject,
            handler=consumers.on_stock_arrived(clock),
            streams=settings.common.streams,
        )
        runtime.consume(consumer)

    async def drop_cache(_msg: object) -> None:
        cache.invalidate()

    # every replica drops its cache; a plain subscription suffices (the cache also expires by age)
    await runtime.nc.subscribe(f"{prefix}.routing.rules_activated", cb=drop_cache)
    runtime.every(
        "retry parked",
        settings.retry_parked_seconds,
        lambda: jobs.retry_parked(new_uow, cache, stock),
        one_replica=True,
    )
    return Routing(servicer(runtime.engine, cache, stock, clock), channel.close)
