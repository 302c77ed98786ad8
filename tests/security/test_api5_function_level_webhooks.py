"""API5 (broken function level authorisation): a webhook secret signs only its own kind and sender."""

from __future__ import annotations

import pytest

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, signed_payment
from tests.e2e.test_walking_skeleton import order_json


@pytest.mark.parametrize("bound_to", ["carrier/sf", "channel/taobao"])
async def test_a_carrier_or_channel_secret_cannot_mark_an_order_paid(
    platform: Platform, bound_to: str
) -> None:
    ops = bearer(platform, "ops")
    status, _, created = await call(platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops)
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
