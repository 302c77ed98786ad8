"""Run the routing service.

`python -m services.routing` serves gRPC; `python -m services.routing migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from oms.routing.v1 import routing_pb2_grpc
from services.kit import app, grpc_client, identity
from services.kit.consumer import EventConsumer
from services.kit.db import UnitOfWork
from services.kit.runtime import Runtime
from services.routing import consumers, handlers, jobs
from services.routing.config import Settings
from services.routing.grpc_api import SERVICE_NAME, RoutingServicer
from services.routing.inventory_client import InventoryStock


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:

        def new_uow() -> UnitOfWork:
            return UnitOfWork(runtime.engine)

        await handlers.ensure_default_rules(new_uow())
        cache = handlers.RuleSetCache()
        channel = grpc_client.channel(
            settings.inventory_address, identity=identity.own_identity(settings.common.identity)
        )
        stock = InventoryStock(channel)
        prefix = settings.common.subject_prefix
        for subject in ("inventory.back_in_stock", "inventory.adjusted"):
            name = "routing-" + subject.replace(".", "-")
            consumer = EventConsumer(
                runtime.js,
                runtime.engine,
                name=name,
                subject_prefix=prefix,
                subject=subject,
                handler=consumers.on_stock_arrived,
                streams=settings.common.streams,
            )
            runtime.spawn(name, consumer.run)

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
        servicer = RoutingServicer(new_uow, cache, stock)
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: routing_pb2_grpc.add_RoutingServiceServicer_to_server(servicer, server),
            readiness=runtime.ready,
        )
        await channel.close()


def main() -> None:
    app.run("routing", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
