"""API5 (broken function level authorisation): a webhook secret signs only its own kind and sender."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from omsctl.stack import Platform, edge_settings
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json


@pytest.mark.parametrize("bound_to", ["carrier/sf", "channel/taobao"])
async def test_a_carrier_or_channel_secret_cannot_mark_an_order_paid(
    platform: Platform, bound_to: str
) -> None:
    ops = bearer(platform, "ops")
    status, _, created = await call(platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops)
    assert status == 200
    order = created["order"]
    body = json.dumps(
        {
            "transaction_id": random_ref("wx"),
            "out_trade_no": order["orderId"],
            "trade_state": "SUCCESS",
            "amount": {"total": int(order["total"]["amountMinor"]), "currency": "CNY"},
            "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
    ).encode()
    secret = base64.b64decode(json.loads(edge_settings(platform.home)["WEBHOOK_SECRETS"])[bound_to])
    timestamp = str(int(time.time()))
    signature = hmac.new(secret, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    sender = bound_to.partition("/")[2]
    refused, _, _ = await call(
        platform,
        "POST",
        f"/v1/webhooks/payments/{sender}",
        body,
        **{"x-oms-webhook-timestamp": timestamp, "x-oms-webhook-signature": signature},
    )
    assert refused == 401
    _, _, read = await call(platform, "GET", f"/v1/orders/{order['orderId']}", token=ops)
    # unpaid: waiting for payment, or held because this platform's catalogue lacks the order's SKU
    assert read["order"]["status"] in ("ORDER_STATUS_PENDING_PAYMENT", "ORDER_STATUS_ON_HOLD")
    assert not read["order"].get("paidAt")
