"""Rate limiter benchmark (`python -m bench.limiter`): is a busy gateway's limiter still right?

1. The limiter in this process against the embedded Redis, built as the gateway builds it: 200
   concurrent checks of one principal's write limit (1,000/s, burst 2,000), in rounds, while the
   event loop is also kept busy with CPU work as a loaded gateway's is. Latency p50/p99 of one check
   and the number of refusals (every call is under the limit, so each refusal is a false one).
2. The whole platform as `make run` starts it (skipped with BENCH_EDGE=0): 200 concurrent IngestOrder
   calls through Envoy with a service token (the role's limit is 1,000/s, burst 2,000), in rounds;
   every answer other than OK is counted by status code.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from bench.common import median, percentile
from bench.gateway import order_request
from oms.orders.v1 import orders_pb2_grpc
from omsctl import tokens
from omsctl.stack import Infra, Platform, edge_settings
from services.gateway.config import (
    DEFAULT_LIMITER,
    DEFAULT_REDIS_MAX_CONNECTIONS,
    DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS,
)
from services.gateway.limits import (
    Limit,
    LimiterSettings,
    LocalTokenBucket,
    RateLimiter,
    RedisTokenBucket,
    connect_redis,
)

CONCURRENT = 200
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WRITE = Limit(rate_per_second=1000, burst=2000)
# the gateway's defaults unless overridden, to size them
POOL = int(os.environ.get("BENCH_REDIS_MAX_CONNECTIONS", DEFAULT_REDIS_MAX_CONNECTIONS))
TIMEOUT = float(os.environ.get("BENCH_LIMITER_TIMEOUT_SECONDS", DEFAULT_LIMITER.redis_timeout_seconds))


async def busy_loop(stop: asyncio.Event, slice_seconds: float) -> None:
    """Hold the event loop for `slice_seconds` at a time, as request parsing and auth do under load."""
    while not stop.is_set():
        until = time.perf_counter() + slice_seconds
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def limiter_under_load(redis_url: str, busy_slice: float) -> tuple[list[float], int, int]:
    redis = connect_redis(redis_url, POOL, DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS)
    settings = LimiterSettings(redis_timeout_seconds=TIMEOUT)
    limiter = RateLimiter(RedisTokenBucket(redis), LocalTokenBucket(), settings)
    latencies: list[float] = []
    refused = unavailable = 0
    stop = asyncio.Event()
    busy = [asyncio.create_task(busy_loop(stop, busy_slice)) for _ in range(4 if busy_slice else 0)]
    try:
        for round_no in range(-1, ROUNDS):  # round -1 warms the pool's connections up, unmeasured

            async def one(n: int, round_no: int = round_no) -> None:
                nonlocal refused, unavailable
                started = time.perf_counter()
                decision = await limiter.check(f"bench-{round_no}:write", WRITE, time.time(), costly=True)
                if round_no < 0:
                    return
                latencies.append(time.perf_counter() - started)
                if not decision.allowed:
                    refused += 1
                    unavailable += int(decision.unavailable)

            await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
            await asyncio.sleep(1.1)  # past the limiter's Redis back-off, so rounds are independent
    finally:
        stop.set()
        await asyncio.gather(*busy)
        await redis.aclose()
    return latencies, refused, unavailable


async def writes_through_the_edge(envoy: str, token: str) -> Counter[str]:
    metadata = (("authorization", f"Bearer {token}"),)
    codes: Counter[str] = Counter()
    channels = [grpc.aio.insecure_channel(envoy) for _ in range(4)]
    stubs = [orders_pb2_grpc.OrdersServiceStub(channel) for channel in channels]
    try:
        for round_no in range(ROUNDS):

            async def one(n: int, round_no: int = round_no) -> None:
                try:
                    await stubs[n % len(stubs)].IngestOrder(
                        order_request(f"bench-lim-{round_no}-{n}-{time.time_ns()}"),
                        metadata=metadata,
                        timeout=30,
                    )
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

            await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
            await asyncio.sleep(1.1)
    finally:
        for channel in channels:
            await channel.close()
    return codes


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-lim-"))
    home.chmod(0o755)
    os.environ["LOG_LEVEL"] = "WARNING"
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchlim", fixed_ports=False)
    try:
        infra.start()
        print(f"limiter_pool_size: {POOL} connections")
        print(f"limiter_timeout_ms: {TIMEOUT * 1000:.0f} ms")
        for name, busy_slice in (("idle_loop", 0.0), ("busy_loop", 0.005)):
            latencies, refused, unavailable = asyncio.run(limiter_under_load(infra.redis_url, busy_slice))
            print(f"limiter_{name}_p50_ms: {median(latencies) * 1000:.2f} ms")
            print(f"limiter_{name}_p99_ms: {percentile(latencies, 0.99) * 1000:.2f} ms")
            print(f"limiter_{name}_max_ms: {max(latencies) * 1000:.2f} ms")
            print(f"limiter_{name}_false_refusals: {refused} of {len(latencies)} calls")
            print(f"limiter_{name}_answered_unavailable: {unavailable} of {len(latencies)} calls")
            slow = sum(latency >= TIMEOUT for latency in latencies)
            print(f"limiter_{name}_past_the_timeout: {slow} of {len(latencies)} calls")
        if os.environ.get("BENCH_EDGE", "1") == "0":
            return
        platform.start()
        token = tokens.mint(edge_settings(home), "bench-service", ["service"], 3600)
        codes = asyncio.run(writes_through_the_edge(platform.endpoints["envoy"], token))
        total = sum(codes.values())
        print(f"edge_writes_ok: {codes['OK']} of {total} calls")
        print(f"edge_writes_resource_exhausted: {codes['RESOURCE_EXHAUSTED']} of {total} calls")
        print(f"edge_writes_unavailable: {codes['UNAVAILABLE']} of {total} calls")
        for code, count in sorted(codes.items()):
            if code not in ("OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"):
                print(f"edge_writes_{code.lower()}: {count} of {total} calls")
    finally:
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
