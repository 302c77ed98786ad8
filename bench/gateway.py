"""Gateway benchmark (`make bench-gateway`): the whole platform as `make run` starts it.

1. An authenticated GetOrder through Envoy + gateway against the same call straight to the orders
   service, in one run: one client in sequence, the two paths in turn (latency, the gateway's overhead
   per call), and 32 concurrent clients (throughput, p99).
2. Chunked upload of a 32 MiB payload through Envoy: begin, 1 MiB chunks (4 in flight), status;
   MB/s of the transfer, and separately of the verification (size + SHA-256) on complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import closed_loop, median, percentile
from oms.common.v1 import common_pb2
from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl import tokens
from omsctl.stack import SERVICES, Infra, Platform, edge_settings, identity_settings
from services.gateway.config import DEFAULT_LIMITS
from services.kit.identity import ASSERTION_HEADER, IdentitySettings, Principal, Signer

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CLIENTS = 32
UPLOAD_BYTES = int(os.environ.get("BENCH_UPLOAD_MB", "32")) << 20
CHUNK = 1 << 20


def order_request(ref: str) -> orders_pb2.IngestOrderRequest:
    return orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_OWN_SHOP,
        channel_order_id=ref,
        buyer_id="bench",
        lines=[
            orders_pb2.OrderLine(
                sku="SKU-1", quantity=1, unit_price=common_pb2.Money(currency_code="CNY", amount_minor=100)
            )
        ],
        shipping_address=common_pb2.Address(
            recipient_name="Li",
            phone="13800000000",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            detail="1",
        ),
    )


async def sequential(
    paths: dict[str, tuple[str, tuple[tuple[str, str], ...]]], order_id: str, calls: int
) -> dict[str, list[float]]:
    """One call at a time, the paths in turn (direct, then through the edge, then direct, …), so that a
    machine whose speed drifts during the run slows both alike; latencies per path."""
    channels = {name: grpc.aio.insecure_channel(address) for name, (address, _) in paths.items()}
    try:
        stubs = {name: orders_pb2_grpc.OrdersServiceStub(channel) for name, channel in channels.items()}
        request = orders_pb2.GetOrderRequest(order_id=order_id)
        for name, stub in stubs.items():
            for _ in range(50):  # warm up connections and caches
                await stub.GetOrder(request, metadata=paths[name][1], timeout=10)
        latencies: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(calls):
            for name, stub in stubs.items():
                started = time.perf_counter()
                await stub.GetOrder(request, metadata=paths[name][1], timeout=10)
                latencies[name].append(time.perf_counter() - started)
    finally:
        for channel in channels.values():
            await channel.close()
    return latencies


async def concurrent(
    address: str, order_id: str, metadata: tuple[tuple[str, str], ...]
) -> tuple[float, list[float]]:
    request = orders_pb2.GetOrderRequest(order_id=order_id)

    def get(stub: orders_pb2_grpc.OrdersServiceStub, n: int, count: int) -> object:
        return stub.GetOrder(request, metadata=metadata, timeout=10)

    return await closed_loop(
        address, orders_pb2_grpc.OrdersServiceStub, CLIENTS, SECONDS, get, own_assertion=False
    )


async def upload(address: str, metadata: tuple[tuple[str, str], ...]) -> tuple[float, float]:
    # a JSON document of the right size; the orders inside are few, so completing measures the
    # verification rather than order ingest
    filler = "x" * (UPLOAD_BYTES - 200)
    payload = ('{"channel": "CHANNEL_OWN_SHOP", "orders": [], "padding": "' + filler + '"}').encode()
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
    options = [("grpc.max_send_message_length", 16 << 20)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        started = time.perf_counter()
        begun = await stub.BeginUpload(
            gateway_pb2.BeginUploadRequest(
                target=gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH,
                total_bytes=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                chunk_bytes=CHUNK,
            ),
            metadata=metadata,
            timeout=30,
        )
        upload_id = begun.upload.upload_id
        queue = list(enumerate(chunks))

        async def sender() -> None:
            while queue:
                index, data = queue.pop()
                await stub.PutChunk(
                    gateway_pb2.PutChunkRequest(upload_id=upload_id, index=index, data=data),
                    metadata=metadata,
                    timeout=30,
                )

        await asyncio.gather(*(sender() for _ in range(4)))
        state = await stub.GetUpload(
            gateway_pb2.GetUploadRequest(upload_id=upload_id), metadata=metadata, timeout=30
        )
        transfer = time.perf_counter() - started
        assert not state.upload.missing_chunks
        started = time.perf_counter()
        try:
            await stub.CompleteUpload(
                gateway_pb2.CompleteUploadRequest(upload_id=upload_id), metadata=metadata, timeout=120
            )
        except grpc.aio.AioRpcError as error:  # an empty batch is refused by its target after verification
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
        verify = time.perf_counter() - started
    megabytes = len(payload) / (1 << 20)
    return megabytes / transfer, megabytes / verify


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-gw-"))
    home.chmod(0o755)
    os.environ["RATE_LIMITS"] = (
        DEFAULT_LIMITS + ",role:ops.read=1000000/s:1000000,role:ops.upload=100000/s:100000"
    )
    os.environ["LOG_LEVEL"] = "WARNING"
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchgw", fixed_ports=False)
    try:
        infra.start()
        platform.start()
        token = tokens.mint(edge_settings(home), "bench", ["ops"], 3600)
        edge_md = (("authorization", f"Bearer {token}"),)
        # straight to orders with what the gateway would send: its assertion of the same caller (one
        # per run, since a gateway assertion lives a minute; each call is verified in full all the same)
        gateway = next(spec for spec in SERVICES if spec.name == "gateway")
        signer = Signer(IdentitySettings.from_env("gateway", identity_settings(home, gateway)))
        bench_user = Principal("bench", "user", frozenset({"ops"}))

        def direct_md() -> tuple[tuple[str, str], ...]:
            return ((ASSERTION_HEADER, signer.mint(bench_user, "orders")),)

        orders = platform.endpoints["orders"]
        envoy = platform.endpoints["envoy"]

        async def seed() -> str:
            async with grpc.aio.insecure_channel(orders) as channel:
                reply = await orders_pb2_grpc.OrdersServiceStub(channel).IngestOrder(
                    order_request("bench-1"), metadata=direct_md(), timeout=10
                )
            return str(reply.order.order_id)

        order_id = asyncio.run(seed())
        one_by_one = asyncio.run(
            sequential({"direct": (orders, direct_md()), "edge": (envoy, edge_md)}, order_id, 2000)
        )
        direct_seq, edge_seq = one_by_one["direct"], one_by_one["edge"]
        direct_rate, direct_lat = asyncio.run(concurrent(orders, order_id, direct_md()))
        edge_rate, edge_lat = asyncio.run(concurrent(envoy, order_id, edge_md))
        print(f"edge_get_order_per_s: {edge_rate:.0f} calls/s")
        print(f"direct_get_order_per_s: {direct_rate:.0f} calls/s")
        print(f"edge_to_direct_throughput_ratio: {edge_rate / direct_rate:.2f} ratio")
        print(f"gateway_overhead_p50_ms: {(median(edge_seq) - median(direct_seq)) * 1000:.2f} ms")
        print(f"edge_p50_sequential_ms: {median(edge_seq) * 1000:.2f} ms")
        print(f"direct_p50_sequential_ms: {median(direct_seq) * 1000:.2f} ms")
        print(f"edge_p99_ms: {percentile(edge_lat, 0.99) * 1000:.1f} ms")
        print(f"direct_p99_ms: {percentile(direct_lat, 0.99) * 1000:.1f} ms")
        transfer, verify = asyncio.run(upload(envoy, edge_md))
        print(f"chunked_upload_mb_per_s: {transfer:.1f} MB/s")
        print(f"chunked_verify_mb_per_s: {verify:.1f} MB/s")
    finally:
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
