from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.config import InvalidSetting
from services.kit.errors import InvalidArgument
from services.orders.config import parse_providers
from services.orders.domain.model import Channel, accept
from services.orders.domain.payments import (
    PaymentNotification,
    PaymentStatus,
    Verdict,
    assess,
    payable_through,
    validate,
)
from tests.unit.orders.test_model import command

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def order(channel: Channel = Channel.OWN_SHOP):  # type: ignore[no-untyped-def]
    """An own-shop order: the kind a provider's notification pays."""
    return accept(command(channel=channel), "order-1", NOW)


def note(**changes: object) -> PaymentNotification:
    base = PaymentNotification(
        "wechat_pay", "4200001", "order-1", "CNY", order().payable_minor, NOW, PaymentStatus.SUCCESS
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_matching_payment_is_applied() -> None:
    assert assess(note(), order(), NOW).verdict is Verdict.PAY


@pytest.mark.parametrize("minutes", [-18, 11, 600])
def test_a_paid_time_outside_the_window_is_parked_never_refused(minutes: int) -> None:
    result = assess(note(paid_at=NOW + timedelta(minutes=minutes)), order(), NOW)
    assert result.verdict is Verdict.PARK
    assert "outside ±10 min" in result.reason


def test_times_are_compared_in_utc_whatever_the_zone() -> None:
    beijing = NOW.astimezone(__import__("datetime").timezone(timedelta(hours=8)))
    assert assess(note(paid_at=beijing), order(), NOW).verdict is Verdict.PAY


def test_the_window_is_configurable() -> None:
    assert (
        assess(note(paid_at=NOW - timedelta(minutes=18)), order(), NOW, timedelta(minutes=30)).verdict
        is Verdict.PAY
    )


def test_a_different_amount_or_currency_is_parked() -> None:
    assert assess(note(amount_minor=1), order(), NOW).verdict is Verdict.PARK
    assert assess(note(currency="USD"), order(), NOW).verdict is Verdict.PARK


def test_an_unknown_order_is_parked() -> None:
    assert assess(note(), None, NOW).verdict is Verdict.PARK


@pytest.mark.parametrize("status", [PaymentStatus.FAILED, PaymentStatus.CLOSED])
def test_failed_and_closed_are_recorded(status: PaymentStatus) -> None:
    assert assess(note(status=status), order(), NOW).verdict is Verdict.RECORD


def test_a_refund_of_a_paid_order_alerts_and_of_an_unpaid_one_parks() -> None:
    paid = order()
    paid.pay(NOW, paid.payable_minor, "t", NOW)
    assert assess(note(status=PaymentStatus.REFUND), paid, NOW).verdict is Verdict.ALERT
    assert assess(note(status=PaymentStatus.REFUND), order(), NOW).verdict is Verdict.PARK


def test_a_second_payment_is_parked_for_a_refund() -> None:
    paid = order()
    paid.pay(NOW, paid.payable_minor, "t", NOW)
    assert assess(note(transaction_id="other"), paid, NOW).verdict is Verdict.PARK


def test_a_reviewer_can_accept_a_parked_payment() -> None:
    assert assess(note(amount_minor=1), order(), NOW, reviewed=True).verdict is Verdict.PAY


@pytest.mark.parametrize("channel", [Channel.TAOBAO, Channel.JD, Channel.DOUYIN, Channel.SHOPEE])
@pytest.mark.parametrize("status", list(PaymentStatus))
def test_a_marketplace_order_is_never_paid_by_a_provider_not_even_by_a_reviewer(
    channel: Channel, status: PaymentStatus
) -> None:
    for reviewed in (False, True):
        result = assess(note(status=status), order(channel), NOW, reviewed=reviewed)
        assert result.verdict is Verdict.PARK
        assert result.reason == (
            f"{channel.value} orders are not payable through wechat_pay: the marketplace collects their money"
        )


@pytest.mark.parametrize("channel", [Channel.OWN_SHOP, Channel.POS])
def test_our_own_shop_and_tills_are_paid_through_their_configured_providers_only(channel: Channel) -> None:
    assert payable_through(order(channel), "wechat_pay") and payable_through(order(channel), "alipay")
    assert not payable_through(order(channel), "paypal")
    only_alipay = frozenset({"alipay"})
    result = assess(note(), order(channel), NOW, providers=only_alipay)
    assert result.verdict is Verdict.PARK
    assert (
        result.reason
        == f"{channel.value} orders are not payable through wechat_pay: their providers are alipay"
    )
    assert assess(note(provider="alipay"), order(channel), NOW, providers=only_alipay).verdict is Verdict.PAY


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": ""}, "provider"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"merchant_order_no": " "}, "merchant_order_no"),
        ({"amount_minor": -1}, "amount.amount_minor"),
        ({"currency": "cny"}, "amount.currency_code"),
    ],
)
def test_unidentifiable_notifications_are_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate(note(**changes))
    assert refused.value.field == field


def test_the_own_channels_providers_are_a_list_of_sender_names() -> None:
    assert parse_providers(" wechat_pay, alipay ,") == frozenset({"wechat_pay", "alipay"})
    for bad in ("", ",", "WeChat Pay", "wechat_pay;alipay"):
        with pytest.raises(InvalidSetting, match="SELF_RUN_PAYMENT_PROVIDERS"):
            parse_providers(bad)
