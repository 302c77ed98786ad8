"""The platform as `make run` starts it: reachable through Envoy, and not around it (issue 10)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import grpc
import pytest

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.stack import SERVICES, Platform, identity_settings
from services.kit.db import plain_url, with_database
from services.kit.identity import ASSERTION_HEADER, IdentitySettings, Principal, Signer
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata
from tests.e2e.test_walking_skeleton import http_call, order_json
from tests.identity import listening_hosts

FORGED_ADMIN = (("x-oms-principal", "root"), ("x-oms-actor-type", "user"), ("x-oms-roles", "admin"))


def gateway_signer(platform: Platform) -> Signer:
    """The running gateway's own key, read from the stack's home (what a thief of it could do)."""
    gateway = next(spec for spec in SERVICES if spec.name == "gateway")
    return Signer(IdentitySettings.from_env("gateway", identity_settings(platform.home, gateway)))


async def orders_count(platform: Platform) -> int:
    url = with_database(platform.infra.database_url, platform.database_name("orders"))
    conn = await asyncpg.connect(plain_url(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders"))
    finally:
        await conn.close()


async def test_envoy_still_reaches_orders_but_the_orders_port_refuses_an_unsigned_call(
    platform: Platform,
) -> None:
    body = json.dumps(order_json(random_ref("DY"))).encode()
    status, _, raw = await asyncio.to_thread(http_call, platform, "POST", "/v1/orders", body)
    assert status == 200, raw
    order_id = json.loads(raw)["order"]["orderId"]
    status, _, raw = await asyncio.to_thread(http_call, platform, "GET", f"/v1/orders/{order_id}")
    assert status == 200 and json.loads(raw)["order"]["orderId"] == order_id
    before = await orders_count(platform)

    async with grpc.aio.insecure_channel(platform.endpoints["orders"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as listed:
            await stub.ListOrders(orders_pb2.ListOrdersRequest(), metadata=FORGED_ADMIN, timeout=10)
        assert listed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as ingested:
            await stub.IngestOrder(
                orders_pb2.IngestOrderRequest(
                    channel=orders_pb2.CHANNEL_DOUYIN, channel_order_id=random_ref("DY")
                ),
                metadata=FORGED_ADMIN,
                timeout=10,
            )
        assert ingested.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await orders_count(platform) == before


async def test_a_callers_own_assertion_is_never_forwarded_by_the_gateway(platform: Platform) -> None:
    status, _, raw = await asyncio.to_thread(
        http_call, platform, "POST", "/v1/orders", json.dumps(order_json(random_ref("DY"))).encode()
    )
    assert status == 200, raw
    order_id = json.loads(raw)["order"]["orderId"]
    # even a genuine gateway assertion of an admin, smuggled in beside an ops token, counts for nothing
    admin = Principal("root", "user", frozenset({"admin"}))
    smuggled = (ASSERTION_HEADER, gateway_signer(platform).mint(admin, "orders"))
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        read = await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id),
            metadata=(*auth_metadata(platform, "ops"), smuggled, *FORGED_ADMIN),
            timeout=10,
        )
    assert read.order.masked and read.order.shipping_address.phone != "13700000000"


def test_every_service_listens_on_loopback_only(platform: Platform) -> None:
    for spec in SERVICES:
        port = int(platform.endpoints[spec.name].rsplit(":", 1)[1])
        assert listening_hosts(port) == {"127.0.0.1"}, spec.name


def test_the_stacks_keys_are_readable_by_their_owner_only(platform: Platform) -> None:
    assert (platform.home / "identity-keys.json").stat().st_mode & 0o777 == 0o600
