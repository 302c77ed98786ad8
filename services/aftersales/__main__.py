"""Run the after-sales service.

`python -m services.aftersales` serves gRPC; `python -m services.aftersales migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from services.aftersales import bootstrap
from services.aftersales.config import Settings
from services.aftersales.grpc_api import SERVICE_NAME
from services.kit import app
from services.kit.runtime import Runtime


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        aftersales = await bootstrap.build(settings, runtime)
        await app.serve_until_signalled(
            settings.common, [SERVICE_NAME], aftersales.register, readiness=runtime.ready
        )
        await aftersales.close()


def main() -> None:
    app.run("aftersales", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
