"""RPC metrics benchmark (`make bench-metrics`): what counting and timing a call in the server
interceptor costs, in-process.

`rpc_metrics_observe` is the interceptor's whole addition per call (its method's figures found, the code
counted, the latency put in its bucket). `rpc_call_*` are unary calls to an in-process kit server over
loopback, with the figures recorded and with recording turned off: their difference is the same cost
seen end to end, within the noise of a shared machine. Best of many short batches, as bench.identity.
Prints `name: value unit`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import grpc

from bench.identity import per_call_us
from services.kit import metrics
from services.kit.grpc_server import GrpcServer

BATCHES = int(os.environ.get("BENCH_BATCHES", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
CALLS = 200


async def calls_us(call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(CALLS):
        await call()
    best = float("inf")
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(CALLS):
            await call()
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best * 1e6


async def main() -> None:
    figures = metrics.RPC.figures("bench").of("/bench.Echo/Say")
    print(f"rpc_metrics_observe: {per_call_us(lambda: figures.observe('OK', 0.0042)):.2f} us")

    async def say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = GrpcServer(
        port=0,
        verifier=None,
        service_names=["bench.Echo"],
        register=lambda _server: None,
        generic_handlers=[
            grpc.method_handlers_generic_handler(
                "bench.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
            )
        ],
        service="bench",
    )
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary("/bench.Echo/Say")

        async def call() -> object:
            return await stub(b"x")

        observe = metrics.MethodFigures.observe

        def recording(on: bool) -> None:
            metrics.MethodFigures.observe = (  # type: ignore[method-assign]
                observe if on else (lambda self, code, seconds: None)
            )

        # with and without in turns, best of each: one after the other, the second run was the
        # faster either way (measured both orders), which is the machine warming, not the figures
        recorded, unrecorded = float("inf"), float("inf")
        try:
            for _ in range(ROUNDS):
                recording(True)
                recorded = min(recorded, await calls_us(call))
                recording(False)
                unrecorded = min(unrecorded, await calls_us(call))
        finally:
            recording(True)
    await server.stop()
    print(f"rpc_call_with_metrics: {recorded:.1f} us")
    print(f"rpc_call_without_metrics: {unrecorded:.1f} us")
    print(f"rpc_metrics_overhead: {recorded - unrecorded:.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
