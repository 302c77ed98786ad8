from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.orders.domain.model import accept
from services.orders.domain.payments import PaymentNotification, PaymentStatus, Verdict, assess, validate
from tests.unit.orders.test_model import command

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def order():  # type: ignore[no-untyped-def]
    return accept(command(), "order-1", NOW)


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
