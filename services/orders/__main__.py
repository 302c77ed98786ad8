"""Run the orders service.

`python -m services.orders` serves gRPC; `python -m services.orders migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from oms.orders.v1 import orders_pb2_grpc
from services.kit import app
from services.kit.db import UnitOfWork
from services.kit.runtime import Runtime
from services.orders.config import Settings
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        servicer = OrdersServicer(lambda: UnitOfWork(runtime.engine))
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, server),
        )


def main() -> None:
    app.run("orders", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
