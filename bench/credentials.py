"""Wrong-secret flood benchmark (`make bench-credentials`): an admin's GetOrder through Envoy while 16
anonymous clients send wrong client secrets to IssueToken as fast as they are answered (each with a new
client id and a rotated `x-forwarded-for`, as an attacker would).

Prints the admin's GetOrder p50/p99 alone and under the flood (and how many of the admin's calls
Envoy's edge-wide rate limit shed), the wrong-secret attempts answered per second and how they were
answered (401: hashed and refused; 429: rate limit or back-off; 503: the
hashing cap was full).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from bench.common import median, percentile
from bench.gateway import order_request
from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl import tokens
from omsctl.stack import SERVICES, Infra, Platform, edge_settings, identity_settings
from services.kit.identity import ASSERTION_HEADER, IdentitySettings, Principal, Signer

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ATTACKERS = 16


async def admin_latencies(address: str, order_id: str, metadata: tuple[tuple[str, str], ...]) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        request = orders_pb2.GetOrderRequest(order_id=order_id)
        for _ in range(20):
            await stub.GetOrder(request, metadata=metadata, timeout=10)
        latencies = []
        ends = time.monotonic() + SECONDS
        while time.monotonic() < ends:
            started = time.perf_counter()
            try:
                await stub.GetOrder(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as error:
                # Envoy's edge-wide token bucket (1,000/s) sheds whoever comes when it is empty,
                # the admin too: counted, not timed
                if error.code() != grpc.StatusCode.UNAVAILABLE or error.details() != "local_rate_limited":
                    raise
                shed[0] += 1
                continue
            latencies.append(time.perf_counter() - started)
    return latencies


shed = [0]  # the admin's calls Envoy's edge rate limit answered 503 during the run


async def flood(address: str, stop: asyncio.Event, answers: Counter[str]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        while not stop.is_set():
            spoofed = f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
            try:
                await stub.IssueToken(
                    gateway_pb2.IssueTokenRequest(
                        client_id=f"guess-{secrets.token_hex(4)}", client_secret="x"
                    ),
                    metadata=(("x-forwarded-for", spoofed),),
                    timeout=10,
                )
                answers["OK"] += 1
            except grpc.aio.AioRpcError as error:
                answers[error.code().name] += 1


async def under_flood(
    address: str, order_id: str, metadata: tuple[tuple[str, str], ...]
) -> tuple[list[float], Counter[str]]:
    stop = asyncio.Event()
    answers: Counter[str] = Counter()
    attackers = [asyncio.create_task(flood(address, stop, answers)) for _ in range(ATTACKERS)]
    await asyncio.sleep(1.0)  # the flood is running before the admin is measured
    try:
        latencies = await admin_latencies(address, order_id, metadata)
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    return latencies, answers


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-cred-"))
    home.chmod(0o755)
    os.environ["LOG_LEVEL"] = "WARNING"
    # the admin's reads stay under its own limit (500/s); the flood meets the anonymous `auth` limit
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchcred", fixed_ports=False)
    try:
        infra.start()
        platform.start()
        admin = (
            ("authorization", f"Bearer {tokens.mint(edge_settings(home), 'bench-admin', ['admin'], 3600)}"),
        )
        gateway = next(spec for spec in SERVICES if spec.name == "gateway")
        signer = Signer(IdentitySettings.from_env("gateway", identity_settings(home, gateway)))
        ops = Principal("bench", "user", frozenset({"ops"}))

        async def seed() -> str:
            async with grpc.aio.insecure_channel(platform.endpoints["orders"]) as channel:
                reply = await orders_pb2_grpc.OrdersServiceStub(channel).IngestOrder(
                    order_request("bench-cred-1"),
                    metadata=((ASSERTION_HEADER, signer.mint(ops, "orders")),),
                    timeout=10,
                )
            return str(reply.order.order_id)

        order_id = asyncio.run(seed())
        envoy = platform.endpoints["envoy"]
        quiet = asyncio.run(admin_latencies(envoy, order_id, admin))
        loud, answers = asyncio.run(under_flood(envoy, order_id, admin))
        print(f"admin_get_order_p50_quiet_ms: {median(quiet) * 1000:.1f} ms")
        print(f"admin_get_order_p99_quiet_ms: {percentile(quiet, 0.99) * 1000:.1f} ms")
        print(f"admin_get_order_p50_flood_ms: {median(loud) * 1000:.1f} ms")
        print(f"admin_get_order_p99_flood_ms: {percentile(loud, 0.99) * 1000:.1f} ms")
        print(f"admin_get_order_shed_by_edge_limit_flood: {shed[0]} calls of {shed[0] + len(loud)}")
        total = sum(answers.values())
        print(f"wrong_secret_attempts_per_s: {total / (SECONDS + 1):.0f} calls/s")
        for code in ("UNAUTHENTICATED", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "OK"):
            print(f"wrong_secret_answered_{code.lower()}: {answers.get(code, 0)} calls")
    finally:
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
