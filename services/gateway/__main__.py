"""Run the gateway: `python -m services.gateway`."""

from __future__ import annotations

import asyncio

from services.gateway.config import Settings
from services.gateway.proxy import ProxyHandler
from services.gateway.routes import public_proto_modules
from services.kit import grpc_client
from services.kit.config import settings_or_exit
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.logs import configure_logging
from services.kit.tracing import setup_tracing


async def serve(settings: Settings) -> None:
    public_proto_modules()
    channels = {service: grpc_client.channel(address) for service, address in settings.upstreams.items()}
    server = GrpcServer(
        port=settings.port,
        service_names=list(settings.upstreams),
        register=lambda _server: None,
        generic_handlers=[ProxyHandler(channels, settings.upstream_deadline_seconds)],
        grace_seconds=settings.grace_seconds,
    )
    await server.start()
    try:
        await wait_for_shutdown_signal()
    finally:
        await server.stop()
        for channel in channels.values():
            await channel.close()


def main() -> None:
    configure_logging("gateway")
    settings = settings_or_exit(Settings.from_env)
    configure_logging("gateway", settings.log_level)
    setup_tracing("gateway")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
