"""API4 Unrestricted Resource Consumption: Redis has a memory limit, and what it holds for security
(replay nonces, rate-limit buckets) is never evicted to make room. Before the fix the embedded Redis had
no limit at all (two abandoned 64 MiB uploads kept 32 MiB for an hour, and more would have grown it
unbounded); with a limit but an evicting policy a full Redis would silently drop nonces (a replay
window) and buckets (a reset limit). With `noeviction` a full Redis refuses writes, and the gateway
refuses the call rather than accept it unchecked."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from omsctl.stack import Platform, edge_settings
from services.gateway import auth
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json
from tests.waiting import eventually

GET_SKU = "/oms.inventory.v1.InventoryService/GetSku"
SKU = random_ref("SKU")


async def test_the_platforms_redis_has_a_memory_limit_and_never_evicts(platform: Platform) -> None:
    redis = Redis.from_url(platform.infra.redis_url, decode_responses=True)
    try:
        limit = await redis.config_get("maxmemory")
        policy = await redis.config_get("maxmemory-policy")
    finally:
        await redis.aclose()
    # REDIS_MAXMEMORY's default, 256mb
    assert int(limit["maxmemory"]) == 256 * 1024 * 1024
    assert policy["maxmemory-policy"] == "noeviction"


@pytest.fixture
async def full_redis(platform: Platform) -> AsyncIterator[None]:
    """The platform's Redis as full: over its limit, so every write is refused with an OOM error."""
    redis = Redis.from_url(platform.infra.redis_url, decode_responses=True)
    limit = (await redis.config_get("maxmemory"))["maxmemory"]
    await redis.config_set("maxmemory", 1)
    try:
        with pytest.raises(OutOfMemoryError):
            await redis.set(random_ref("probe"), "x")
        yield
    finally:
        await redis.config_set("maxmemory", limit)
        await redis.aclose()


def _signed(platform: Platform, body: bytes) -> tuple[tuple[str, str], ...]:
    secret = base64.b64decode(edge_settings(platform.home)["DEMO_CHANNEL_KEY_SECRET"])
    timestamp, nonce = str(int(time.time())), secrets.token_hex(12)
    return (
        ("x-oms-key-id", "demo-taobao"),
        ("x-oms-timestamp", timestamp),
        ("x-oms-nonce", nonce),
        ("x-oms-signature", auth.sign(secret, GET_SKU, timestamp, nonce, body)),
    )


@pytest.fixture(scope="module", autouse=True)
async def sku(platform: Platform) -> None:
    status, _, answer = await call(
        platform, "PUT", f"/v1/inventory/skus/{SKU}", {"title": "Tea"}, token=bearer(platform, "ops")
    )
    assert status == 200, answer


async def _get_sku(platform: Platform) -> grpc.StatusCode:
    request = inventory_pb2.GetSkuRequest(sku=SKU)
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        try:
            await stub.GetSku(request, metadata=_signed(platform, request.SerializeToString()), timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_a_nonce_a_full_redis_cannot_store_refuses_the_signed_call(
    platform: Platform, full_redis: None
) -> None:
    # a nonce that cannot be stored cannot be checked for replay: the call is refused (retryable)
    assert await _get_sku(platform) == grpc.StatusCode.UNAVAILABLE


async def test_a_rate_limit_bucket_a_full_redis_cannot_store_refuses_costly_writes(
    platform: Platform, full_redis: None
) -> None:
    ops = bearer(platform, "ops", sub=random_ref("ops"))
    status, _, answer = await call(platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops)
    assert status == 503, answer
    assert answer["message"] == "rate limiter unavailable; retry"


async def test_signed_calls_and_writes_pass_again_once_redis_has_room(platform: Platform) -> None:
    ops = bearer(platform, "ops", sub=random_ref("ops"))

    async def write_passes() -> bool:
        status, _, _ = await call(platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops)
        return status == 200

    # after an error the limiter tries Redis again every RATE_LIMIT_REDIS_RETRY_SECONDS (1 s)
    await eventually(write_passes, within=10)
    assert await _get_sku(platform) == grpc.StatusCode.OK
