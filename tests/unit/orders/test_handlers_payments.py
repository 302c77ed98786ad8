"""Payment assessment on a fake unit of work: applied, parked for the amount, parked for the provider."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.kit.errors import FailedPrecondition
from services.orders import handlers
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, Channel, OrderPaid, ServiceAlert
from services.orders.domain.payments import PaymentNotification, PaymentState, PaymentStatus
from services.orders.domain.timeline import Actor
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders, FakeUnitOfWork
from tests.unit.orders.test_model import command

PAYABLE = 2 * 4500 + 1999 + 800


async def own_shop_order(db: FakeOrders, channel: Channel = Channel.OWN_SHOP) -> str:
    [result], _ = await handlers.ingest(
        db.uow(), POLICY, [command(channel=channel, channel_order_id="OS-1")], Actor.service("test")
    )
    assert result.order is not None
    return result.order.order_id


def paid(order_ref: str, **changes: object) -> PaymentNotification:
    values: dict[str, object] = {
        "provider": "wechat_pay",
        "transaction_id": "wx-1",
        "merchant_order_no": order_ref,
        "currency": "CNY",
        "amount_minor": PAYABLE,
        "paid_at": NOW,
        "status": PaymentStatus.SUCCESS,
    }
    values.update(changes)
    return PaymentNotification(**values)  # type: ignore[arg-type]


async def test_a_payment_that_matches_pays_the_order_and_its_commit_step_is_due() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    record, duplicate, changes = await handlers.report_payment(db.uow, POLICY, paid(order_id))
    assert (record.state, record.order_id, duplicate) == (PaymentState.APPLIED, order_id, False)
    assert record.reason == "payment matches the order"
    stored = db.order(order_id)
    assert (stored.order.status, stored.order.paid_at) == (OrderStatus.PAID, NOW)
    assert changes.due_steps == {order_id}
    assert db.published(OrderPaid) == [(order_id, OrderPaid(NOW, PAYABLE, "wx-1"))]
    assert db.kinds(order_id)[-3:] == ["paid", "status_changed", "payment_applied"]
    assert db.state.payments[record.payment_id].state is PaymentState.APPLIED


async def test_the_own_shops_order_number_finds_the_order_too() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    record, _, _ = await handlers.report_payment(db.uow, POLICY, paid("OS-1"))
    assert (record.state, record.order_id) == (PaymentState.APPLIED, order_id)


async def test_the_order_id_without_its_hyphens_finds_the_order_as_wechat_pays_32_characters_carry_it() -> (
    None
):
    db = FakeOrders()
    order_id = await own_shop_order(db)
    record, _, _ = await handlers.report_payment(db.uow, POLICY, paid(order_id.replace("-", "").upper()))
    assert (record.state, record.order_id) == (PaymentState.APPLIED, order_id)


async def test_a_wrong_amount_is_parked_on_the_order_for_a_person_and_alerted() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    record, _, changes = await handlers.report_payment(
        db.uow, POLICY, paid(order_id, amount_minor=PAYABLE - 1)
    )
    assert record.state is PaymentState.PARKED
    assert record.reason == f"amount {PAYABLE - 1} CNY differs from the payable {PAYABLE} CNY"
    assert db.order(order_id).order.status is OrderStatus.PENDING_PAYMENT
    assert db.kinds(order_id)[-2:] == ["alert", "payment_parked"]
    [(owner, alert)] = db.published(AlertRaised)
    assert owner == order_id and isinstance(alert, AlertRaised) and alert.kind == "payment_parked"
    assert changes.due_steps == {order_id}  # its reserve step is still wanted


async def test_a_parked_payment_accepted_by_a_reviewer_pays_the_order() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    parked, _, _ = await handlers.report_payment(db.uow, POLICY, paid(order_id, amount_minor=PAYABLE - 1))
    accepted, _ = await handlers.review_payment(db.uow, POLICY, parked.payment_id, True)
    assert (accepted.state, accepted.reason) == (PaymentState.APPLIED, "accepted by a reviewer")
    assert db.order(order_id).order.status is OrderStatus.PAID
    with pytest.raises(FailedPrecondition):
        await handlers.review_payment(db.uow, POLICY, parked.payment_id, True)


async def test_a_provider_that_cannot_have_collected_the_money_is_parked_without_touching_the_order() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db, Channel.TAOBAO)  # a marketplace collects its own money
    before = db.order(order_id)
    timeline = db.kinds(order_id)
    record, _, changes = await handlers.report_payment(db.uow, POLICY, paid(order_id))
    assert record.state is PaymentState.PARKED
    assert record.reason.startswith("TAOBAO orders are not payable through wechat_pay")
    assert db.order(order_id) == before and db.kinds(order_id) == timeline
    assert changes.due_steps == set()
    [(owner, alert)] = db.published(ServiceAlert)
    assert owner == "" and isinstance(alert, ServiceAlert)
    assert (alert.kind, alert.order_id) == ("payment_parked", order_id)


async def test_a_provider_not_configured_for_the_own_shop_is_parked_the_same_way() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    record, _, _ = await handlers.report_payment(db.uow, POLICY, paid(order_id, provider="paypal"))
    assert record.state is PaymentState.PARKED
    assert db.order(order_id).order.version == 1
    assert [alert.kind for _, alert in db.published(ServiceAlert)] == ["payment_parked"]  # type: ignore[attr-defined]


async def test_a_notification_for_no_order_is_parked_and_alerted() -> None:
    db = FakeOrders()
    record, _, _ = await handlers.report_payment(db.uow, POLICY, paid("OS-404"))
    assert (record.state, record.order_id, record.reason) == (PaymentState.PARKED, None, "no order OS-404")
    [(_, alert)] = db.published(ServiceAlert)
    assert isinstance(alert, ServiceAlert) and alert.order_id == ""


async def test_the_same_transaction_again_answers_the_first_as_a_duplicate() -> None:
    db = FakeOrders()
    order_id = await own_shop_order(db)
    first, _, _ = await handlers.report_payment(db.uow, POLICY, paid(order_id))
    again, duplicate, changes = await handlers.report_payment(db.uow, POLICY, paid(order_id))
    assert duplicate and again.payment_id == first.payment_id and changes.due_steps == set()
    assert len(db.state.payments) == 1


class Failing(FakeUnitOfWork):
    async def commit(self) -> None:
        if any(isinstance(event, OrderPaid) for _, event in self.state.published):
            raise ConnectionError("database went away")
        await super().commit()


async def test_handling_that_fails_keeps_the_notification_and_dead_letters_it_after_the_last_attempt() -> (
    None
):
    db = FakeOrders()
    order_id = await own_shop_order(db)
    policy = replace(POLICY, retry_attempts=2)
    record, _, _ = await handlers.report_payment(lambda: Failing(db.state, db.clock), policy, paid(order_id))
    assert (record.state, record.attempts) == (PaymentState.RECEIVED, 1)
    assert db.state.payment_due[record.payment_id] == NOW + policy.retry_delay
    db.clock.advance(policy.retry_delay + timedelta(seconds=1))
    assert await handlers.due_payments(db.uow()) == [record.payment_id]
    dead, _ = await handlers.handle_payment(lambda: Failing(db.state, db.clock), policy, record.payment_id)
    assert (dead.state, dead.attempts) == (PaymentState.DEAD, 2)
    assert dead.reason == "ConnectionError: database went away"
    assert db.order(order_id).order.status is OrderStatus.PENDING_PAYMENT
    assert [alert.kind for _, alert in db.published(ServiceAlert)] == ["payment_dead_letter"]  # type: ignore[attr-defined]
