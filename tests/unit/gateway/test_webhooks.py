from __future__ import annotations

import json

import pytest

from oms.orders.v1 import orders_pb2
from services.gateway.domain.policy import POLICY
from services.gateway.domain.webhooks import (
    FORWARDED,
    WebhookError,
    may_forward,
    payload_targets,
    sender_principal,
)
from services.gateway.mappers import carrier_report, payment_report


def wechat(**changes: object) -> bytes:
    body: dict[str, object] = {
        "transaction_id": "4200001",
        "out_trade_no": "order-1",
        "trade_state": "SUCCESS",
        "amount": {"total": 11799, "currency": "CNY"},
        "success_time": "2026-11-22T10:00:00+08:00",
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_a_wechat_notification_becomes_a_payment_report_in_utc() -> None:
    report = payment_report("wechat_pay", wechat())
    assert (report.transaction_id, report.merchant_order_no, report.amount.amount_minor) == (
        "4200001",
        "order-1",
        11799,
    )
    assert report.status == orders_pb2.PAYMENT_STATUS_SUCCESS
    assert report.paid_at.ToDatetime().isoformat() == "2026-11-22T02:00:00"


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("CLOSED", orders_pb2.PAYMENT_STATUS_CLOSED),
        ("PAYERROR", orders_pb2.PAYMENT_STATUS_FAILED),
        ("REFUND", orders_pb2.PAYMENT_STATUS_REFUND),
    ],
)
def test_every_wechat_state_is_mapped_not_ignored(state: str, status: int) -> None:
    assert payment_report("wechat_pay", wechat(trade_state=state)).status == status


def test_an_alipay_notification_reads_yuan_amounts() -> None:
    body = json.dumps(
        {
            "trade_no": "2026112222001",
            "out_trade_no": "order-2",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": "117.99",
            "gmt_payment": "2026-11-22T10:00:00+08:00",
        }
    ).encode()
    report = payment_report("alipay", body)
    assert (report.amount.amount_minor, report.status) == (11799, orders_pb2.PAYMENT_STATUS_SUCCESS)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (wechat(trade_state="WHATEVER"), "body.trade_state"),
        (wechat(amount={"total": "12"}), "body.amount.total"),
        (wechat(success_time="2026-11-22 10:00:00"), "body.success_time"),
        (wechat(transaction_id=""), "body.transaction_id"),
    ],
)
def test_malformed_notifications_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(WebhookError) as refused:
        payment_report("wechat_pay", body)
    assert refused.value.field == field


def test_a_carrier_push_becomes_a_carrier_source_report() -> None:
    body = json.dumps(
        {
            "waybill_no": "SF1",
            "channel": "taobao",
            "channel_order_id": "TB-1",
            "node": "signed",
            "time": "2026-11-22T10:00:00Z",
        }
    ).encode()
    report = carrier_report("sf", body)
    assert report.source == "CARRIER" and report.channel == orders_pb2.CHANNEL_TAOBAO
    assert report.fields["tracking"]["node"] == "SIGNED" and report.fields["waybill_no"] == "SF1"


def test_a_notifications_target_ids_are_read_even_when_it_is_otherwise_invalid() -> None:
    assert payload_targets("payment", wechat(trade_state="NONSENSE")) == ["4200001", "order-1"]
    assert payload_targets("carrier", b'{"waybill_no": "SF1", "order_id": "o-1", "node": 5}') == [
        "SF1",
        "o-1",
    ]
    assert payload_targets("payment", b"not json") == []
    assert payload_targets("channel", wechat()) == []


@pytest.mark.parametrize(
    ("kind", "sender", "role", "scope"),
    [
        ("payment", "wechat_pay", "payment_provider", {"provider": "wechat_pay", "channel": ""}),
        ("carrier", "sf", "carrier", {"provider": "", "channel": ""}),
        ("channel", "taobao", "channel", {"provider": "", "channel": "TAOBAO"}),
    ],
)
def test_a_webhooks_sender_acts_with_its_kinds_role_and_scope_never_as_a_service(
    kind: str, sender: str, role: str, scope: dict[str, str]
) -> None:
    who = sender_principal(kind, sender)
    assert (who.subject, who.kind, who.roles) == (f"{kind}/{sender}", "integration", frozenset({role}))
    assert {"provider": who.provider, "channel": who.channel} == scope
    assert may_forward(kind, who)
    assert FORWARDED[kind] in POLICY


def test_a_webhook_is_forwarded_only_where_the_policy_lets_its_senders_role() -> None:
    carrier = sender_principal("carrier", "sf")
    assert not may_forward("payment", carrier) and not may_forward("channel", carrier)
    assert not may_forward("carrier", sender_principal("payment", "wechat_pay"))
