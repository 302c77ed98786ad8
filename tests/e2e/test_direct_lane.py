"""The direct lane (services/gateway/edge_authz.py): a read the gateway's authoriser admits goes from
Envoy straight to its service; one it would not admit goes through the gateway's proxy and is refused
there with the status and HTTP code it always had. Counted from Envoy's own cluster statistics: a call
the gateway forwards reaches orders on the gateway's channel, never on Envoy's `orders` cluster."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
import pytest

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.stack import Platform
from services.kit.identity import Principal
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata, bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json
from tests.identity import forged

pytestmark = pytest.mark.e2e


def _counters(platform: Platform) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{platform.endpoints['envoy-admin']}/stats", timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    found = {}
    for line in lines:
        name, _, value = line.partition(": ")
        if name.endswith(".upstream_rq_total") and name.startswith("cluster."):
            found[name.removeprefix("cluster.").removesuffix(".upstream_rq_total")] = int(value)
    return found


async def counters(platform: Platform) -> dict[str, int]:
    return await asyncio.to_thread(_counters, platform)


async def test_an_admitted_read_goes_straight_to_its_service_and_a_refused_one_is_refused_by_the_gateway(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    status, _, created = await call(platform, "POST", "/v1/orders", order_json(random_ref("DL")), token=ops)
    assert status == 200, created
    order_id = created["order"]["orderId"]

    before = await counters(platform)
    for _ in range(3):
        status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        assert status == 200 and read["order"]["orderId"] == order_id
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        reply = await stub.GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id), metadata=auth_metadata(platform, "ops"), timeout=10
        )
        assert reply.order.order_id == order_id
        after_admitted = await counters(platform)

        # refused: no credentials, a forged assertion instead of them, a role that may not read orders
        refusals = [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("x-oms-assertion", forged_assertion()),), grpc.StatusCode.UNAUTHENTICATED),
            (auth_metadata(platform, "wms"), grpc.StatusCode.PERMISSION_DENIED),
        ]
        for metadata, code in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=order_id), metadata=metadata, timeout=10
                )
            assert refused.value.code() == code
    status, _, body = await call(platform, "GET", f"/v1/orders/{order_id}")
    assert (status, body["code"]) == (401, 16)
    status, _, body = await call(platform, "GET", f"/v1/orders/{order_id}", token=bearer(platform, "wms"))
    assert (status, body["code"]) == (403, 7)
    after_refused = await counters(platform)

    # the four admitted reads reached orders on Envoy's own cluster, each after one question to the
    # authoriser; the five refused ones asked it too and went on to the gateway, never to orders
    assert after_admitted["orders"] - before["orders"] == 4
    assert after_admitted["gateway-authz"] - before["gateway-authz"] == 4
    assert after_refused["orders"] == after_admitted["orders"]
    assert after_refused["gateway-authz"] - after_admitted["gateway-authz"] == 5
    assert after_refused["gateway"] - after_admitted["gateway"] >= 5


def forged_assertion() -> str:
    return forged(Principal(subject="mallory", actor_type="user", roles=frozenset({"admin"})), "orders")


async def test_a_write_never_asks_the_authoriser(platform: Platform) -> None:
    before = await counters(platform)
    ops = bearer(platform, "ops")
    status, _, created = await call(platform, "POST", "/v1/orders", order_json(random_ref("DLW")), token=ops)
    assert status == 200, created
    after = await counters(platform)
    assert after["gateway-authz"] == before["gateway-authz"]
    assert after["gateway"] > before["gateway"]


async def test_a_read_larger_than_the_authorisers_body_limit_is_answered_whole_on_the_direct_lane(
    platform: Platform,
) -> None:
    """The authoriser is sent at most 64 KiB of a request; that limit must not cap the answer: a rule
    set of more than 64 KiB of JSON comes back whole through the lane."""
    ops = bearer(platform, "ops")
    before = await counters(platform)
    status, _, read = await call(platform, "GET", "/v1/routing/rule-sets/0", token=ops)
    assert status == 200, read
    assert len(json.dumps(read)) > 64 * 1024 and int(read["ruleSet"]["version"]) >= 1
    after = await counters(platform)
    assert after.get("routing", 0) - before.get("routing", 0) == 1, "it went the direct lane"
