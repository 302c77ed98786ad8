"""API1 Broken Object Level Authorization: a payment notification applies only to an order payable
through its provider, and a principal reports only its own provider's payments or its own channel's
statuses. Before the fix a WeChat Pay notification marked a Douyin order paid (the marketplace collects
its orders' money; no provider notification is a payment there), and a payment provider's credential
for Alipay reported WeChat Pay payments."""

from __future__ import annotations

import time
from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, signed_payment
from tests.e2e.test_walking_skeleton import order_json, own_shop_order_json
from tests.security.claims import signed_token

UNPAID = ("ORDER_STATUS_PENDING_PAYMENT", "ORDER_STATUS_ON_HOLD")


async def _create(platform: Platform, order: dict[str, Any]) -> dict[str, Any]:
    status, _, created = await call(platform, "POST", "/v1/orders", order, token=bearer(platform, "ops"))
    assert status == 200, created
    result: dict[str, Any] = created["order"]
    return result


async def _read(platform: Platform, order_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ops = bearer(platform, "ops")
    _, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
    _, _, timeline = await call(platform, "GET", f"/v1/orders/{order_id}/timeline", token=ops)
    return read["order"], timeline["entries"]


def _notification(order: dict[str, Any], provider: str) -> dict[str, Any]:
    return {
        "provider": provider,
        "transactionId": random_ref("tx"),
        "merchantOrderNo": order["orderId"],
        "amount": order["total"],
        "paidAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "PAYMENT_STATUS_SUCCESS",
    }


async def test_a_wechat_pay_notification_does_not_pay_a_marketplace_order_and_changes_nothing_on_it(
    platform: Platform,
) -> None:
    order = await _create(platform, order_json(random_ref("DY")))  # a Douyin order, not paid yet
    transaction_id = random_ref("wx")
    body, headers = signed_payment(platform, order, transaction_id)

    status, _, answer = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers)

    # stored and parked for a person (a notification is never refused for its content), not applied
    assert status == 200, answer
    after, history = await _read(platform, order["orderId"])
    assert after["status"] in UNPAID and not after.get("paidAt"), after
    # nothing on the order: no payment entry, no alert naming the transaction on its timeline
    touched = [
        entry
        for entry in history
        if entry["kind"] in ("paid", "payment_parked") or transaction_id in entry.get("detail", "")
    ]
    assert not touched, touched
    _, _, payments = await call(
        platform,
        "GET",
        f"/v1/payment-notifications?orderId={order['orderId']}",
        token=bearer(platform, "finance"),
    )
    [payment] = payments["payments"]
    assert payment["transactionId"] == transaction_id
    assert payment["state"] == "PAYMENT_STATE_PARKED"
    assert "wechat_pay" in payment["reason"] and "DOUYIN" in payment["reason"]


async def test_a_payment_providers_credential_reports_its_own_providers_payments_only(
    platform: Platform,
) -> None:
    alipay = signed_token(platform, sub="alipay-gateway", roles=["payment_provider"], provider="alipay")
    order = await _create(platform, own_shop_order_json(random_ref("OWN")))

    refused, _, answer = await call(
        platform, "POST", "/v1/payment-notifications", _notification(order, "wechat_pay"), token=alipay
    )

    assert refused == 403, answer
    assert "alipay" in answer["message"]
    unpaid, _ = await _read(platform, order["orderId"])
    assert not unpaid.get("paidAt")
    status, _, answer = await call(
        platform, "POST", "/v1/payment-notifications", _notification(order, "alipay"), token=alipay
    )
    assert status == 200, answer
    assert answer["payment"]["state"] == "PAYMENT_STATE_APPLIED", answer


async def test_a_payment_provider_credential_naming_no_provider_reports_nothing(platform: Platform) -> None:
    anonymous = signed_token(platform, sub="some-provider", roles=["payment_provider"])
    order = await _create(platform, own_shop_order_json(random_ref("OWN")))
    status, _, answer = await call(
        platform, "POST", "/v1/payment-notifications", _notification(order, "wechat_pay"), token=anonymous
    )
    assert status == 403, answer
    unpaid, _ = await _read(platform, order["orderId"])
    assert not unpaid.get("paidAt")


async def test_a_channel_reports_statuses_for_its_own_channels_orders_only_a_carrier_for_any(
    platform: Platform,
) -> None:
    order = await _create(platform, own_shop_order_json(random_ref("OWN")))
    report = {
        "source": "CARRIER",
        "orderId": order["orderId"],
        "fields": {"carrier": "sf", "waybill_no": random_ref("SF"), "tracking": {"node": "IN_TRANSIT"}},
    }
    taobao = bearer(platform, "channel", sub="tb-probe", channel="TAOBAO")
    hidden, _, answer = await call(platform, "POST", "/v1/source-reports", report, token=taobao)
    # outside the channel's rows: the same answer as an unknown order
    assert hidden == 404, answer
    carrier = bearer(platform, "carrier", sub="sf-probe")
    status, _, answer = await call(platform, "POST", "/v1/source-reports", report, token=carrier)
    assert status == 200, answer
