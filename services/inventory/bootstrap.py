"""Wiring: settings → the store's units of work (with the event mapper), the servicer and the timers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory import jobs, mappers
from services.inventory.config import Settings
from services.inventory.grpc_api import SERVICE_NAME, InventoryServicer
from services.inventory.store import InventoryUnitOfWork
from services.kit import app
from services.kit.clock import Clock
from services.kit.runtime import Runtime


def unit_of_work(engine: AsyncEngine, clock: Clock | None = None) -> InventoryUnitOfWork:
    """A unit of work on inventory's database whose events leave as inventory's integration events."""
    return InventoryUnitOfWork(engine, mappers.integration_event, clock)


def units_of_work(engine: AsyncEngine, clock: Clock | None = None) -> Callable[[], InventoryUnitOfWork]:
    return lambda: unit_of_work(engine, clock)


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        new_uow = units_of_work(runtime.engine)
        servicer = InventoryServicer(new_uow, settings.policy)
        runtime.every(
            "expiry sweep",
            settings.sweep_seconds,
            lambda: jobs.sweep_expired(new_uow, settings.policy),
            one_replica=True,
        )
        runtime.every(
            "invariant check",
            settings.invariant_check_seconds,
            lambda: jobs.check_invariants(new_uow),
            one_replica=True,
        )
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, server),
            readiness=runtime.ready,
        )
