"""The guards through the whole platform over HTTP: a paid order not out of the warehouse in time turns
red, is escalated to its queue's backup owner and becomes an alert record for them; the fifth order of
a velocity burst is frozen and the risk reviewer releases it."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)


def order_body(
    ref: str, phone: str, district: str, sku: str = "SKU-TEA-250G", paid: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "CHANNEL_TAOBAO" if paid else "CHANNEL_OWN_SHOP",
        "channelOrderId": ref,
        "buyerId": f"buyer-{ref}",
        "lines": [
            {
                "sku": sku,
                "title": "Item",
                "quantity": 1,
                "unitPrice": {"currencyCode": "CNY", "amountMinor": "8800"},
            }
        ],
        "shippingAddress": {
            "recipientName": "Li Lei",
            "phone": phone,
            "countryCode": "CN",
            "province": "Guangdong",
            "city": "Shenzhen",
            "district": district,
            "detail": "1 Shennan Road",
        },
        "shippingFee": {"currencyCode": "CNY", "amountMinor": "1000"},
    }
    if paid:
        body["paidAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return body


def phone() -> str:
    return f"137{random.randint(0, 99_999_999):08d}"


async def test_a_paid_order_past_its_limit_turns_red_and_reaches_the_backup_owner(platform: Platform) -> None:
    admin, ops = bearer(platform, "admin", sub="zhao.admin"), bearer(platform, "ops", sub="han.mei")
    backup = random_ref("lead-")
    owners = {"owners": {"queue": "fulfilment/express", "owner": "warehouse_supervisor", "backup": backup}}
    status, _, _ = await call(platform, "POST", "/v1/sla-owners", owners, token=admin)
    assert status == 200
    status, _, created = await call(
        platform,
        "POST",
        "/v1/orders",
        order_body(random_ref("e2e-sla-"), phone(), "Futian", "E2E-SLA-1", paid=True),
        token=ops,
    )
    assert status == 200, created
    order_id = created["order"]["orderId"]
    _, _, got = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
    assert got["order"]["sla"]["queue"] == "fulfilment/express"

    red: list[dict[str, Any]] = []

    async def listed_red() -> bool:
        _, _, answer = await call(
            platform, "GET", "/v1/sla-timers?minLevel=SLA_LEVEL_RED&queue=fulfilment/express", token=ops
        )
        red[:] = [t for t in answer.get("timers", []) if t["orderId"] == order_id]
        return bool(red) and red[0].get("escalatedTo") == backup

    await eventually(listed_red, within=30)
    assert red[0]["level"] == "SLA_LEVEL_RED" and int(red[0]["overdueSeconds"]) >= 0
    _, _, got = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
    assert got["order"]["sla"]["level"] == "SLA_LEVEL_RED"
    _, _, timeline = await call(platform, "GET", f"/v1/orders/{order_id}/timeline", token=ops)
    kinds = [entry["kind"] for entry in timeline["entries"]]
    assert kinds.index("sla_amber") < kinds.index("sla_red")

    # the breach is an alert record at the gateway, addressed to the backup owner
    found: list[dict[str, Any]] = []

    async def recorded() -> bool:
        _, _, answer = await call(
            platform, "GET", f"/v1/alerts?kind=sla_breached&orderId={order_id}", token=ops
        )
        found[:] = answer.get("alerts", [])
        return bool(found)

    await eventually(recorded, within=40)
    assert found[0]["roles"] == [backup] and found[0]["severity"] == "SEVERITY_HIGH"


async def test_the_fifth_order_of_a_velocity_burst_is_frozen_and_the_risk_reviewer_releases_it(
    platform: Platform,
) -> None:
    ops, reviewer = bearer(platform, "ops"), bearer(platform, "risk", sub="qian.risk")
    burst_phone = phone()
    answers = []
    for district in ("Futian", "Nanshan", "Luohu", "Bao'an", "Longgang"):
        status, _, created = await call(
            platform,
            "POST",
            "/v1/orders",
            order_body(random_ref("e2e-risk-"), burst_phone, district),
            token=ops,
        )
        assert status == 200, created
        answers.append(created["order"])
    assert [o["status"] for o in answers[:4]] == ["ORDER_STATUS_PENDING_PAYMENT"] * 4
    fifth = answers[4]
    assert fifth["status"] == "ORDER_STATUS_ON_HOLD", fifth
    order_id = fifth["orderId"]

    status, _, queue = await call(platform, "GET", "/v1/risk-reviews?page.pageSize=500", token=reviewer)
    assert status == 200 and order_id in [e["orderId"] for e in queue["evaluations"]]
    _, _, judged = await call(platform, "GET", f"/v1/orders/{order_id}/risk", token=reviewer)
    velocity = next(r for r in judged["evaluation"]["results"] if r["ruleId"] == "velocity")
    assert velocity["hit"] and velocity["seen"]["phone_orders_1h"] == 5
    assert judged["evaluation"]["frozen"] is True

    # a customer-service agent may not review (staff and the risk role only)
    agent = bearer(platform, "cs_agent", sub="agent-1")
    status, _, _ = await call(platform, "GET", "/v1/risk-reviews", token=agent)
    assert status == 403
    status, _, released = await call(
        platform,
        "POST",
        f"/v1/orders/{order_id}/risk-review",
        {"decision": "RISK_DECISION_APPROVE", "note": "company orders for five offices"},
        token=reviewer,
    )
    assert status == 200, released
    assert released["order"]["status"] == "ORDER_STATUS_PENDING_PAYMENT"
    status, _, again = await call(
        platform,
        "POST",
        f"/v1/orders/{order_id}/risk-review",
        {"decision": "RISK_DECISION_CANCEL"},
        token=reviewer,
    )
    assert status == 400 and again["code"] == 9, again  # FAILED_PRECONDITION
