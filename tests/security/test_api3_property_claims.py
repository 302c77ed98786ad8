"""API3 Broken Object Property Level Authorization: a masked property must not be recoverable through a
filter, and a property only a payment may set must not be settable at ingest (mass assignment).

Before the fix the risk role, which sees `137****5678`, recovered the full number by trying the hidden
digits in `filter.buyer_phone` lookups; and `paidAt` on an own-shop order at ingest moved it to ALLOCATED
with no payment record."""

from __future__ import annotations

import json
import uuid
from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json
from tests.fixtures.channels.builders import load


async def test_a_role_that_sees_the_phone_masked_cannot_look_orders_up_by_it(platform: Platform) -> None:
    order = order_json(random_ref("DY"))
    phone = "137" + str(uuid.uuid4().int)[:8]
    order["shippingAddress"]["phone"] = phone
    status, _, created = await call(platform, "POST", "/v1/orders", order, token=bearer(platform, "ops"))
    assert status == 200, created
    # what the first of the ~10^4 guesses looks like: the full number in the filter
    status, _, answer = await call(
        platform, "GET", f"/v1/orders?filter.buyerPhone={phone}", token=bearer(platform, "risk", sub="risk-1")
    )
    assert status == 403, answer
    assert "filter.buyer_phone" in answer["message"]
    # a role that sees the phone unmasked anyway gains nothing from the lookup and keeps it
    status, _, found = await call(
        platform,
        "GET",
        f"/v1/orders?filter.buyerPhone={phone}",
        token=bearer(platform, "admin", sub="admin-1"),
    )
    assert status == 200, found
    assert [o["orderId"] for o in found["orders"]] == [created["order"]["orderId"]]


async def test_paid_at_on_an_own_shop_order_is_refused_at_ingest(platform: Platform) -> None:
    order: dict[str, Any] = {**order_json(random_ref("WEB")), "channel": "CHANNEL_OWN_SHOP"}
    order["paidAt"] = "2026-11-20T08:00:00Z"
    for roles in (("ops",), ("service",)):
        status, _, answer = await call(platform, "POST", "/v1/orders", order, token=bearer(platform, *roles))
        assert status == 400, answer
        assert answer["message"].startswith("paid_at"), answer
    # the same order without the field waits for its payment record
    del order["paidAt"]
    status, _, created = await call(platform, "POST", "/v1/orders", order, token=bearer(platform, "ops"))
    assert status == 200 and created["order"]["status"] == "ORDER_STATUS_PENDING_PAYMENT", created


async def test_paid_at_on_a_marketplace_order_still_pays_it(platform: Platform) -> None:
    order = {**order_json(random_ref("DY")), "paidAt": "2026-11-20T08:00:00Z"}
    status, _, created = await call(platform, "POST", "/v1/orders", order, token=bearer(platform, "ops"))
    assert status == 200, created
    assert created["order"]["status"] != "ORDER_STATUS_PENDING_PAYMENT", created


async def test_an_own_shop_or_pos_payload_saying_paid_awaits_its_payment_record(platform: Platform) -> None:
    for channel, payload, field in (
        ("CHANNEL_OWN_SHOP", load("own_shop", "paid"), "order_no"),
        ("CHANNEL_POS", load("pos", "paid"), "receipt_no"),
    ):
        payload[field] = random_ref("P")
        status, _, created = await call(
            platform,
            "POST",
            "/v1/channel-orders",
            {"channel": channel, "payloadJson": json.dumps(payload)},
            token=bearer(platform, "ops"),
        )
        assert status == 200, created
        # the channel's own status is kept, but it is not a payment
        assert created["order"]["status"] == "ORDER_STATUS_PENDING_PAYMENT", created
        assert created["order"]["channelStatus"], created
