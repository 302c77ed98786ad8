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
        runtime.spawn(
            "expiry-sweeper",
            lambda stop: jobs.sweep_expired(new_uow, settings.policy, settings.sweep_seconds, stop),
        )
        runtime.spawn(
            "invariant-checker",
            lambda stop: jobs.check_invariants(new_uow, settings.invariant_check_seconds, stop),
        )
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, server),
        )


def main() -> None:
    app.run("inventory", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
