"""The entry point every database-backed service shares: `python -m services.<name> [migrate]`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc

from services.kit import identity
from services.kit.config import CommonSettings, required, settings_or_exit
from services.kit.grpc_server import GrpcServer, Readiness, wait_for_shutdown_signal
from services.kit.logs import configure_logging
from services.kit.migrate import upgrade
from services.kit.tracing import setup_tracing


class HasCommon(Protocol):
    @property
    def common(self) -> CommonSettings: ...


S = TypeVar("S", bound=HasCommon)


def run(
    name: str, migrations: Path, load: Callable[[], S], serve: Callable[[S], Coroutine[Any, Any, None]]
) -> None:
    """`migrate` needs only DATABASE_URL (a Kubernetes init container); anything else serves."""
    configure_logging(name)
    if sys.argv[1:] == ["migrate"]:
        upgrade(migrations, settings_or_exit(lambda: required(os.environ, "DATABASE_URL")))
        return
    settings = settings_or_exit(load)
    configure_logging(name, settings.common.log_level)
    setup_tracing(name)
    asyncio.run(serve(settings))


async def serve_until_signalled(
    settings: CommonSettings,
    service_names: Sequence[str],
    register: Callable[[grpc.aio.Server], None],
    readiness: Readiness | None = None,
) -> None:
    server = GrpcServer(
        port=settings.port,
        host=settings.host,
        verifier=identity.Verifier.from_settings(settings.identity),
        service_names=service_names,
        register=register,
        grace_seconds=settings.grace_seconds,
        readiness=readiness,
        readiness_seconds=settings.readiness_check_seconds,
        service=settings.service_name,
    )
    await server.start()
    await wait_for_shutdown_signal()
    await server.stop()
