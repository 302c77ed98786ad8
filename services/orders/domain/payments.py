"""Payment notifications: what each one means for its order (DOMAIN.md §2).

A notification is never refused for its content. What cannot be applied safely — an amount that
does not match, a paid time outside the window, an unknown order, a second payment, an order not
payable through the notification's provider — is parked for a person and alerted, so a skewed clock
can never make paid orders vanish.

Only the channels we run ourselves (own shop, POS) are paid through a payment provider, and only
through the providers configured for them; a marketplace collects its orders' money itself, and its
paid status arrives with the order. A notification for an order its provider cannot have been paid
for is parked without touching the order: a provider's secret must not write on another's orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import InvalidArgument
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import SELF_RUN, Order

DEFAULT_TOLERANCE = timedelta(minutes=10)
# the providers that collect the money of our own shop and tills (SELF_RUN_PAYMENT_PROVIDERS)
DEFAULT_SELF_RUN_PROVIDERS = frozenset({"wechat_pay", "alipay"})


class PaymentStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CLOSED = "CLOSED"
    REFUND = "REFUND"


class PaymentState(StrEnum):
    RECEIVED = "RECEIVED"
    APPLIED = "APPLIED"
    PARKED = "PARKED"
    REJECTED = "REJECTED"
    DEAD = "DEAD"


@dataclass(frozen=True)
class PaymentNotification:
    provider: str
    transaction_id: str
    merchant_order_no: str
    currency: str
    amount_minor: int
    paid_at: datetime
    status: PaymentStatus


@dataclass
class PaymentRecord:
    """A stored notification and what became of it."""

    payment_id: str
    notification: PaymentNotification
    order_id: str | None
    state: PaymentState
    reason: str
    attempts: int
    received_at: datetime


class Verdict(StrEnum):
    PAY = "PAY"  # apply: the order is paid
    PARK = "PARK"  # a person decides
    RECORD = "RECORD"  # nothing to change on the order; kept on its timeline (failed, closed)
    ALERT = "ALERT"  # recorded and someone must act (a refund the after-sales flow must match)


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    reason: str


def validate(notification: PaymentNotification) -> None:
    """Structural checks only: a notification we cannot even identify is answered 400 and the
    provider retries it; everything identifiable is stored."""
    if not notification.provider.strip() or len(notification.provider) > 32:
        raise InvalidArgument("provider", "is required (at most 32 characters), e.g. wechat_pay")
    if not notification.transaction_id.strip() or len(notification.transaction_id) > 64:
        raise InvalidArgument("transaction_id", "is required (at most 64 characters)")
    if not notification.merchant_order_no.strip() or len(notification.merchant_order_no) > 64:
        raise InvalidArgument("merchant_order_no", "is required (at most 64 characters)")
    if notification.amount_minor < 0:
        raise InvalidArgument("amount.amount_minor", "must not be negative")
    if len(notification.currency) != 3 or not notification.currency.isupper():
        raise InvalidArgument("amount.currency_code", "must be an ISO 4217 code such as CNY")


def payable_through(
    order: Order, provider: str, providers: frozenset[str] = DEFAULT_SELF_RUN_PROVIDERS
) -> bool:
    """Whether `provider` can have collected the order's money: one of our own channels' providers."""
    return order.channel in SELF_RUN and provider in providers


def assess(
    notification: PaymentNotification,
    order: Order | None,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    reviewed: bool = False,
    providers: frozenset[str] = DEFAULT_SELF_RUN_PROVIDERS,
) -> Assessment:
    """Decide what a notification does. `reviewed` is a person's acceptance of a parked one; no
    acceptance makes an order paid through a provider that cannot have collected its money."""
    if order is None:
        return Assessment(Verdict.PARK, f"no order {notification.merchant_order_no}")
    if not payable_through(order, notification.provider, providers):
        why = (
            f"their providers are {', '.join(sorted(providers))}"
            if order.channel in SELF_RUN
            else "the marketplace collects their money"
        )
        return Assessment(
            Verdict.PARK,
            f"{order.channel.value} orders are not payable through {notification.provider}: {why}",
        )
    status = notification.status
    if status is PaymentStatus.FAILED:
        return Assessment(Verdict.RECORD, "the provider reports the payment failed")
    if status is PaymentStatus.CLOSED:
        return Assessment(Verdict.RECORD, "the provider closed the payment unpaid")
    if status is PaymentStatus.REFUND:
        if order.is_paid:
            return Assessment(Verdict.ALERT, "the provider reports a refund; after-sales must match it")
        return Assessment(Verdict.PARK, "a refund for an order that was never paid")
    if order.is_paid:
        return Assessment(Verdict.PARK, "the order is already paid: a second payment needs a refund")
    if order.status is OrderStatus.CANCELLED:
        return Assessment(Verdict.PARK, "paid after the order was cancelled: refund or reinstate")
    if reviewed:
        return Assessment(Verdict.PAY, "accepted by a reviewer")
    if notification.currency != order.currency or notification.amount_minor != order.payable_minor:
        return Assessment(
            Verdict.PARK,
            f"amount {notification.amount_minor} {notification.currency} differs from the payable "
            f"{order.payable_minor} {order.currency}",
        )
    skew = notification.paid_at - now
    if abs(skew) > tolerance:
        minutes = skew.total_seconds() / 60
        return Assessment(
            Verdict.PARK,
            f"paid time is {minutes:+.1f} min from our clock (UTC), "
            f"outside ±{tolerance.total_seconds() / 60:g} min",
        )
    return Assessment(Verdict.PAY, "payment matches the order")
