"""The gRPC ceiling of the benchmarks: a server process that answers every method at once with an
empty reply, behind the same interceptor as the services (identity assertion verified, trace span,
logging). The benchmarks call it with the client and the requests they send to the real service, so
`service / echo` says how much of one Python gRPC hop the service's own work leaves.

Run by the benchmarks as `python -m bench.echo` with PORT and the identity settings in the environment.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc

from services.kit import identity
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.tracing import setup_tracing


class Echo(grpc.GenericRpcHandler):
    """Every method: the request's bytes are not even parsed; the reply is an empty message."""

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return b""

        return grpc.unary_unary_rpc_method_handler(answer)


async def serve() -> None:
    settings = identity.IdentitySettings.from_env("echo", os.environ)
    server = GrpcServer(
        port=int(os.environ["PORT"]),
        verifier=identity.Verifier.from_settings(settings),
        service_names=[],
        register=lambda _: None,
        generic_handlers=[Echo()],
        service="echo",
    )
    await server.start()
    await wait_for_shutdown_signal()
    await server.stop()


if __name__ == "__main__":
    setup_tracing("echo")
    asyncio.run(serve())
