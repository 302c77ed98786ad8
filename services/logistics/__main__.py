"""Run the logistics service.

`python -m services.logistics` serves gRPC; `python -m services.logistics migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from services.kit import app
from services.kit.runtime import Runtime
from services.logistics import bootstrap
from services.logistics.config import Settings
from services.logistics.grpc_api import SERVICE_NAME


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        logistics = await bootstrap.build(settings, runtime)
        await app.serve_until_signalled(
            settings.common, [SERVICE_NAME], logistics.register, readiness=runtime.ready
        )
        await logistics.close()


def main() -> None:
    app.run("logistics", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
