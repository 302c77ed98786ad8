"""Run the orders service.

`python -m services.orders` serves gRPC; `python -m services.orders migrate` migrates its database.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from oms.orders.v1 import orders_pb2_grpc
from services.kit.config import required, settings_or_exit
from services.kit.db import UnitOfWork
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.logs import configure_logging
from services.kit.migrate import upgrade
from services.kit.runtime import Runtime
from services.kit.tracing import setup_tracing
from services.orders.config import Settings
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        servicer = OrdersServicer(lambda: UnitOfWork(runtime.engine))
        server = GrpcServer(
            port=settings.common.port,
            service_names=[SERVICE_NAME],
            register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s),
            grace_seconds=settings.common.grace_seconds,
        )
        await server.start()
        await wait_for_shutdown_signal()
        await server.stop()


def main() -> None:
    configure_logging("orders")
    if sys.argv[1:] == ["migrate"]:
        upgrade(MIGRATIONS, settings_or_exit(lambda: required(os.environ, "DATABASE_URL")))
        return
    settings = settings_or_exit(Settings.from_env)
    configure_logging("orders", settings.common.log_level)
    setup_tracing("orders")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
