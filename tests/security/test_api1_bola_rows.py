"""API1 Broken Object Level Authorization beyond orders: routing's decisions, inventory's reservations,
the alert stream and the dashboard's figures answer about orders too, and must keep a customer-service
agent to the customers assigned to them. Before the fix an agent read another agent's customer's
decision (province, city, candidates) and reservation, saw their payment alerts, and the stats counted
every order on the platform."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
import pytest

from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata, bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json

UNKNOWN_ID = "01a20000-0000-7000-8000-000000000000"


async def _stocked_sku(platform: Platform) -> str:
    """A SKU in stock at the warehouse that ships to Guangdong, so its orders are planned and reserved."""
    ops = bearer(platform, "ops")
    warehouse, sku = "WH-GZ", random_ref("SKU")
    for method, path, body in (
        ("PUT", f"/v1/inventory/warehouses/{warehouse}", {"name": "Guangzhou"}),
        ("PUT", f"/v1/inventory/skus/{sku}", {"title": "Mug"}),
        (
            "POST",
            "/v1/inventory/receipts",
            {"receiptId": random_ref("G"), "warehouseId": warehouse, "sku": sku, "quantity": "50"},
        ),
    ):
        status, _, answer = await call(platform, method, path, body, token=ops)
        assert status == 200, answer
    return sku


async def _two_customers(platform: Platform) -> tuple[str, dict[str, str]]:
    """An agent assigned one customer; one order each for that customer and another agent's."""
    agent, mine, theirs = random_ref("agent"), random_ref("cust"), random_ref("cust")
    ops = bearer(platform, "ops")
    sku = await _stocked_sku(platform)
    created = {}
    for who, buyer in (("mine", mine), ("theirs", theirs)):
        body = order_json(random_ref("OWN"))
        body["buyerId"] = buyer
        body["lines"][0]["sku"] = sku
        status, _, answer = await call(platform, "POST", "/v1/orders", body, token=ops)
        assert status == 200, answer
        created[who] = answer["order"]["orderId"]
    status, _, _ = await call(
        platform,
        "POST",
        f"/v1/agents/{agent}/customers",
        {"buyerIds": [mine]},
        token=bearer(platform, "admin"),
    )
    assert status == 200
    return agent, created


async def _answered(platform: Platform, path: str, token: str, deadline: float = 10.0) -> dict[str, Any]:
    """Staff's answer once it exists (a decision and a reservation follow the order asynchronously)."""
    until = time.monotonic() + deadline
    while True:
        status, _, answer = await call(platform, "GET", path, token=token)
        if status == 200 or time.monotonic() > until:
            assert status == 200, answer
            return answer
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "path", ["/v1/routing/decisions/{}", "/v1/inventory/reservations/{}"], ids=["decision", "reservation"]
)
async def test_an_agent_reads_their_customers_decision_and_reservation_and_no_one_elses(
    platform: Platform, path: str
) -> None:
    agent, created = await _two_customers(platform)
    ops = bearer(platform, "ops")
    for order_id in created.values():
        await _answered(platform, path.format(order_id), ops)
    token = bearer(platform, "cs_agent", sub=agent)
    status, _, own = await call(platform, "GET", path.format(created["mine"]), token=token)
    assert status == 200, own
    other = await call(platform, "GET", path.format(created["theirs"]), token=token)
    unknown = await call(platform, "GET", path.format(UNKNOWN_ID), token=token)
    # the same answer as an unknown id: nothing tells the agent the order exists
    assert other[0] == unknown[0] == 404, (other, unknown)
    assert json.dumps(other[2]).replace(created["theirs"], "<id>") == json.dumps(unknown[2]).replace(
        UNKNOWN_ID, "<id>"
    )
    assert "Guangdong" not in json.dumps(other[2])


async def test_an_agents_dashboard_counts_only_their_customers_orders(platform: Platform) -> None:
    agent, _ = await _two_customers(platform)
    status, _, everyone = await call(platform, "GET", "/v1/order-stats", token=bearer(platform, "ops"))
    assert status == 200
    status, _, scoped = await call(
        platform, "GET", "/v1/order-stats", token=bearer(platform, "cs_agent", sub=agent)
    )
    assert status == 200, scoped
    # the platform holds many orders; the new agent's one customer placed exactly one
    assert int(everyone["totalOrders"]) >= 2
    assert int(scoped["totalOrders"]) == 1
    assert sum(int(row.get("orders", 0)) for row in scoped["statuses"]) == 1


async def _park_a_payment(platform: Platform, order_id: str) -> None:
    """A payment of the wrong amount is parked and raises a `payment_parked` alert about the order."""
    status, _, answer = await call(
        platform,
        "POST",
        "/v1/payment-notifications",
        {
            "provider": "wechat_pay",
            "transactionId": random_ref("wx"),
            "merchantOrderNo": order_id,
            "amount": {"currencyCode": "CNY", "amountMinor": "1"},
            "paidAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "status": "PAYMENT_STATUS_SUCCESS",
        },
        token=bearer(platform, "finance"),
    )
    assert status == 200, answer


async def test_an_agents_alert_stream_carries_only_alerts_about_their_customers_orders(
    platform: Platform,
) -> None:
    agent, created = await _two_customers(platform)
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        # replay off: only what is raised from now on
        watch = stub.WatchAlerts(
            gateway_pb2.WatchAlertsRequest(),
            metadata=auth_metadata(platform, "cs_agent", sub=agent),
            timeout=30,
        )
        staff = stub.WatchAlerts(
            gateway_pb2.WatchAlertsRequest(), metadata=auth_metadata(platform, "ops"), timeout=30
        )
        await asyncio.sleep(0.5)
        await _park_a_payment(platform, created["theirs"])
        await _park_a_payment(platform, created["mine"])
        seen: list[tuple[str, str]] = []
        async for item in watch:
            seen.append((item.alert.order_id, item.alert.kind))
            if item.alert.order_id == created["mine"] and item.alert.kind == "payment_parked":
                break
        watch.cancel()
        staff_seen: set[str] = set()
        async for item in staff:
            if item.alert.kind == "payment_parked":
                staff_seen.add(item.alert.order_id)
            if {created["mine"], created["theirs"]} <= staff_seen:
                break
        staff.cancel()
    # the agent's alerts (raised after the other one) arrive, the other customer's never do; staff get both
    assert created["theirs"] not in {order_id for order_id, _ in seen}, seen
    assert all(order_id == created["mine"] for order_id, _ in seen), seen
    assert {created["mine"], created["theirs"]} <= staff_seen
