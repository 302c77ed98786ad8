"""Run the inventory service.

`python -m services.inventory` serves gRPC; `python -m services.inventory migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory import jobs
from services.inventory.config import Settings
from services.inventory.grpc_api import SERVICE_NAME, InventoryServicer
from services.kit import app
from services.kit.db import UnitOfWork
from services.kit.runtime import Runtime


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:

        def new_uow() -> UnitOfWork:
            return UnitOfWork(runtime.engine)

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


def main() -> None:
    app.run("inventory", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
