"""API5 (broken function level authorisation): a webhook secret signs only its own kind and sender, and
a verified webhook reaches orders with the rights of its sender's kind, never as a `service`. Before
the fix every webhook was forwarded under role `service` (unscoped, unmasked, allowed any service
method), so a channel's push was not held to its channel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, signed_payment, webhook_signature
from tests.e2e.test_walking_skeleton import own_shop_order_json
from tests.fixtures.channels.builders import load


@pytest.mark.parametrize("bound_to", ["carrier/zto", "channel/taobao"])
async def test_a_carrier_or_channel_secret_cannot_mark_an_order_paid(
    platform: Platform, bound_to: str
) -> None:
    ops = bearer(platform, "ops")
    status, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    assert status == 200
    order = created["order"]
    body, headers = signed_payment(platform, order, random_ref("wx"), secret_of=bound_to)
    sender = bound_to.partition("/")[2]
    refused, _, _ = await call(platform, "POST", f"/v1/webhooks/payments/{sender}", body, **headers)
    assert refused == 401
    _, _, read = await call(platform, "GET", f"/v1/orders/{order['orderId']}", token=ops)
    # unpaid: waiting for payment, or held because this platform's catalogue lacks the order's SKU
    assert read["order"]["status"] in ("ORDER_STATUS_PENDING_PAYMENT", "ORDER_STATUS_ON_HOLD")
    assert not read["order"].get("paidAt")


async def _payment_webhook(platform: Platform, ops: str) -> str:
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    transaction_id = random_ref("wx")
    body, headers = signed_payment(platform, created["order"], transaction_id)
    status, _, answer = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers)
    assert status == 200, answer
    return transaction_id


async def _carrier_webhook(platform: Platform, ops: str) -> str:
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    waybill = random_ref("ZT")
    body = json.dumps(
        {
            "waybill_no": waybill,
            "order_id": created["order"]["orderId"],
            "node": "IN_TRANSIT",  # drives nothing: a pickup is no scan-out
            "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
    ).encode()
    # (SF and Kuaidi100 push in their own formats: test_api2_authentication_carrier_webhooks.py)
    headers = webhook_signature(platform, body, "carrier/zto")
    status, _, answer = await call(platform, "POST", "/v1/webhooks/carriers/zto", body, **headers)
    assert status == 200, answer
    return waybill


async def _channel_webhook(platform: Platform, ops: str) -> str:
    payload = load("taobao", "unpaid")
    payload["tid"] = int(time.time_ns() % 10**18)
    body = json.dumps(payload).encode()
    headers = webhook_signature(platform, body, "channel/taobao")
    status, _, answer = await call(platform, "POST", "/v1/webhooks/channels/taobao", body, **headers)
    assert status == 200, answer
    return str(payload["tid"])


@pytest.mark.parametrize(
    ("send", "principal", "role"),
    [
        (_payment_webhook, "payment/wechat_pay", "payment_provider"),
        (_carrier_webhook, "carrier/zto", "carrier"),
        (_channel_webhook, "channel/taobao", "channel"),
    ],
)
async def test_a_verified_webhook_acts_with_its_senders_kind_not_as_a_service(
    platform: Platform, send: Any, principal: str, role: str
) -> None:
    target = await send(platform, bearer(platform, "ops"))
    status, _, audit = await call(
        platform, "GET", f"/v1/audit-records?targetId={target}", token=bearer(platform, "admin")
    )
    assert status == 200, audit
    [record] = [record for record in audit["records"] if record["result"] == "OK"]
    assert (record["principal"], record["roles"]) == (principal, [role])
