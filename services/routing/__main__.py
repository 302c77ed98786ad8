"""Run the routing service.

`python -m services.routing` serves gRPC; `python -m services.routing migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from services.kit import app
from services.kit.runtime import Runtime
from services.routing import bootstrap
from services.routing.config import Settings
from services.routing.grpc_api import SERVICE_NAME


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        routing = await bootstrap.build(settings, runtime)
        await app.serve_until_signalled(
            settings.common, [SERVICE_NAME], routing.register, readiness=runtime.ready
        )
        await routing.close()


def main() -> None:
    app.run("routing", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
