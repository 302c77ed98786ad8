"""A kit gRPC server in a process of its own, tracing as a service does (`setup_tracing` with the
environment it was given): `/test.Echo/Relay` calls `/test.Echo/Say` on itself through a kit client
channel, so one call makes a server span, a client span and the callee's server span. Prints its
port, serves until SIGTERM, and then flushes its spans as a service's normal exit does."""

from __future__ import annotations

import asyncio
import sys

import grpc

from services.kit import grpc_client, tracing
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal


async def main() -> None:
    tracing.setup_tracing("traced-test")
    peer: grpc.aio.Channel | None = None

    async def say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"said " + request

    async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        assert peer is not None
        return bytes(await peer.unary_unary("/test.Echo/Say")(request))

    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Relay": grpc.unary_unary_rpc_method_handler(relay),
    }
    server = GrpcServer(
        port=0,
        verifier=None,
        service_names=["test.Echo"],
        register=lambda _server: None,
        generic_handlers=[grpc.method_handlers_generic_handler("test.Echo", handlers)],
        grace_seconds=0.5,
    )
    port = await server.start()
    peer = grpc_client.channel(f"127.0.0.1:{port}", identity=None)
    print(port, flush=True)
    await wait_for_shutdown_signal()
    await server.stop()
    await peer.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
