from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.orders.domain.lifecycle import TRANSITIONS, IllegalTransition, OrderStatus, check, is_legal
from services.orders.domain.model import (
    AlertRaised,
    Order,
    OrderCancelled,
    OrderFrozen,
    OrderHeld,
    OrderPaid,
    OrderReleased,
    StatusChanged,
    accept,
)
from services.orders.domain.orchestration import Step, StockState, next_step
from services.orders.mappers import event_messages
from tests.unit.orders.test_model import command

S = OrderStatus
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LEGAL = {
    (S.PENDING_PAYMENT, S.PAID),
    (S.PENDING_PAYMENT, S.CANCELLED),
    (S.PENDING_PAYMENT, S.ON_HOLD),
    (S.PENDING_PAYMENT, S.EXCEPTION),
    (S.PAID, S.ALLOCATED),
    (S.PAID, S.CANCELLED),
    (S.PAID, S.ON_HOLD),
    (S.PAID, S.EXCEPTION),
    (S.PAID, S.REFUNDED),
    (S.ALLOCATED, S.PICKING),
    (S.ALLOCATED, S.CANCELLED),
    (S.ALLOCATED, S.ON_HOLD),
    (S.ALLOCATED, S.EXCEPTION),
    (S.ALLOCATED, S.REFUNDED),
    (S.PICKING, S.PACKED),
    (S.PICKING, S.ON_HOLD),
    (S.PICKING, S.EXCEPTION),
    (S.PACKED, S.SHIPPED),
    (S.PACKED, S.ON_HOLD),
    (S.PACKED, S.EXCEPTION),
    (S.SHIPPED, S.DELIVERED),
    (S.SHIPPED, S.EXCEPTION),
    (S.SHIPPED, S.PARTIALLY_REFUNDED),
    (S.SHIPPED, S.REFUNDED),
    (S.DELIVERED, S.COMPLETED),
    (S.DELIVERED, S.EXCEPTION),
    (S.DELIVERED, S.PARTIALLY_REFUNDED),
    (S.DELIVERED, S.REFUNDED),
    (S.COMPLETED, S.PARTIALLY_REFUNDED),
    (S.COMPLETED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.COMPLETED),
    (S.PARTIALLY_REFUNDED, S.EXCEPTION),
    (S.ON_HOLD, S.CANCELLED),
    (S.ON_HOLD, S.EXCEPTION),
    (S.EXCEPTION, S.CANCELLED),
}
PAIRS = list(itertools.product(S, S))


def order_in(status: OrderStatus) -> Order:
    order = accept(command(), "order-1", NOW)
    order.status = status
    order.events.clear()
    return order


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_exactly_the_listed_transitions_are_legal(current: OrderStatus, target: OrderStatus) -> None:
    assert is_legal(current, target) is ((current, target) in LEGAL)
    if (current, target) not in LEGAL:
        with pytest.raises(IllegalTransition):
            check(current, target)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_an_illegal_move_freezes_the_order_and_raises_an_alert_instead(
    current: OrderStatus, target: OrderStatus
) -> None:
    order = order_in(current)
    applied = order.move_to(target, "a report", NOW)
    if (current, target) in LEGAL or (current is target and target is not S.PARTIALLY_REFUNDED):
        assert applied
        assert order.status is target
        return
    assert not applied
    assert order.status is S.EXCEPTION
    assert any(isinstance(e, OrderFrozen) and e.attempted is target for e in order.events)
    assert any(isinstance(e, AlertRaised) for e in order.events)


def test_a_repeated_status_is_not_a_second_change() -> None:
    order = order_in(S.PICKING)
    assert order.move_to(S.PICKING, "again", NOW)
    assert order.events == []


def test_unpaid_to_shipped_is_never_applied() -> None:
    order = order_in(S.PENDING_PAYMENT)
    assert not order.move_to(S.SHIPPED, "ERP says shipped", NOW)
    assert order.status is S.EXCEPTION and order.resume_status is S.PENDING_PAYMENT


def test_hold_then_release_returns_to_the_interrupted_status() -> None:
    order = order_in(S.ALLOCATED)
    order.hold("risk review", NOW)
    assert order.status is S.ON_HOLD and order.resume_status is S.ALLOCATED
    assert order.release("cleared", NOW + timedelta(minutes=5)) is S.ALLOCATED
    assert [type(e) for e in order.events] == [StatusChanged, OrderHeld, StatusChanged, OrderReleased]


def test_a_payment_while_held_resumes_as_paid() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.hold("risk review", NOW)
    assert order.pay(NOW, order.payable_minor, "wx-1", NOW)
    assert order.status is S.ON_HOLD
    assert order.release("cleared", NOW) is S.PAID


def test_cancel_is_refused_once_picking_has_started() -> None:
    order = order_in(S.PICKING)
    with pytest.raises(IllegalTransition):
        order.cancel("too late", NOW)
    assert order.status is S.PICKING


def test_cancelling_a_paid_order_says_a_refund_is_due() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.pay(NOW, order.payable_minor, "wx-1", NOW)
    order.cancel("buyer changed their mind", NOW)
    assert OrderCancelled("buyer changed their mind", True) in order.events


def test_a_second_payment_of_a_paid_order_changes_nothing() -> None:
    order = order_in(S.PENDING_PAYMENT)
    order.pay(NOW, order.payable_minor, "wx-1", NOW)
    events = len(order.events)
    assert order.pay(NOW, order.payable_minor, "wx-2", NOW)
    assert len(order.events) == events
    assert next(e for e in order.events if isinstance(e, OrderPaid)).transaction_id == "wx-1"


def test_shipping_proof_needs_both_waybill_and_scan_out() -> None:
    order = order_in(S.PACKED)
    order.record_proof("SF1", None, NOW)
    assert not order.has_shipping_proof
    order.record_proof("", NOW, NOW)
    assert order.has_shipping_proof


@pytest.mark.parametrize(
    ("status", "stock", "step"),
    [
        (S.PENDING_PAYMENT, StockState.NONE, Step.RESERVE),
        (S.PENDING_PAYMENT, StockState.RESERVED, None),
        (S.PAID, StockState.NONE, Step.RESERVE),
        (S.PAID, StockState.RESERVED, Step.COMMIT),
        (S.PAID, StockState.RELEASED, Step.RESERVE),
        (S.CANCELLED, StockState.RESERVED, Step.RELEASE),
        (S.CANCELLED, StockState.COMMITTED, Step.RELEASE),
        (S.CANCELLED, StockState.RELEASED, None),
        (S.ALLOCATED, StockState.COMMITTED, None),
        (S.ON_HOLD, StockState.NONE, None),
    ],
)
def test_the_process_manager_knows_the_next_step(
    status: OrderStatus, stock: StockState, step: Step | None
) -> None:
    assert next_step(order_in(status), stock) is step


def test_an_alert_about_an_order_names_its_customer_and_channel_for_the_scoped_alert_stream() -> None:
    order = order_in(S.ALLOCATED)
    order.move_to(S.PENDING_PAYMENT, "a report", NOW)
    [alert] = [message for subject, message in event_messages(order) if subject == "alerts.raised"]
    assert (alert.order_id, alert.customer_id, alert.channel) == (
        order.order_id,
        order.buyer_id,
        order.channel.value,
    )
    assert alert.customer_id
