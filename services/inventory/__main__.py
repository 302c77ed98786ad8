"""Run the inventory service.

`python -m services.inventory` serves gRPC; `python -m services.inventory migrate` migrates its database.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory import jobs
from services.inventory.config import Settings
from services.inventory.grpc_api import SERVICE_NAME, InventoryServicer
from services.kit.config import required, settings_or_exit
from services.kit.db import UnitOfWork
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.logs import configure_logging
from services.kit.migrate import upgrade
from services.kit.runtime import Runtime
from services.kit.tracing import setup_tracing

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:

        def new_uow() -> UnitOfWork:
            return UnitOfWork(runtime.engine)

        servicer = InventoryServicer(new_uow, settings.policy)
        runtime.spawn(
            "expiry-sweeper",
            lambda stop: jobs.sweep_expired(new_uow, settings.policy, settings.sweep_seconds, stop),
        )
        runtime.spawn(
            "invariant-checker",
            lambda stop: jobs.check_invariants(new_uow, settings.invariant_check_seconds, stop),
        )
        server = GrpcServer(
            port=settings.common.port,
            service_names=[SERVICE_NAME],
            register=lambda s: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, s),
            grace_seconds=settings.common.grace_seconds,
        )
        await server.start()
        await wait_for_shutdown_signal()
        await server.stop()


def main() -> None:
    configure_logging("inventory")
    if sys.argv[1:] == ["migrate"]:
        upgrade(MIGRATIONS, settings_or_exit(lambda: required(os.environ, "DATABASE_URL")))
        return
    settings = settings_or_exit(Settings.from_env)
    configure_logging("inventory", settings.common.log_level)
    setup_tracing("inventory")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
