"""Payment notifications: stored first, then applied to their order, parked for a person, or recorded."""

from __future__ import annotations

from collections.abc import Callable

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import canonical, is_id, new_id
from services.orders.domain import payments as pay
from services.orders.domain.model import AlertRaised, Channel, ServiceAlert
from services.orders.domain.orchestration import Stored
from services.orders.domain.payments import PaymentRecord
from services.orders.domain.timeline import Actor, Entry
from services.orders.handlers.common import Changes, Policy, save_order
from services.orders.handlers.ports import Orders, UnitOfWork

DUE_BATCH = 100


async def report_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, notification: pay.PaymentNotification
) -> tuple[PaymentRecord, bool, Changes]:
    """Store first (its own transaction), then handle. A failure while handling leaves the
    notification stored and due for a retry; it is never lost and never answered with an error.
    Returns the payment, whether it was a repeat of one stored before, and what changed."""
    pay.validate(notification)
    uow = uow_factory()
    async with uow:
        now = uow.clock.now()
        record = PaymentRecord(new_id(), notification, None, pay.PaymentState.RECEIVED, "", 0, now)
        inserted = await uow.payments.add(record, now + policy.retry_delay)
        await uow.commit()
    if not inserted:
        uow = uow_factory()
        async with uow:
            first = await uow.payments.by_transaction(notification.provider, notification.transaction_id)
        assert first is not None
        return first, True, Changes()
    handled, changes = await handle_payment(uow_factory, policy, record.payment_id)
    return handled, False, changes


async def handle_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, payment_id: str, reviewed: bool | None = None
) -> tuple[PaymentRecord, Changes]:
    """Apply, park or record one stored notification. `reviewed` is a reviewer's decision."""
    changes = Changes()
    uow = uow_factory()
    try:
        async with uow:
            record = await _apply_payment(uow, policy, payment_id, reviewed, changes)
            await uow.commit()
        return record, changes
    except Exception as error:
        failed = await _payment_failed(uow_factory(), policy, payment_id, f"{type(error).__name__}: {error}")
        return failed, Changes()


async def review_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, payment_id: str, accept_it: bool
) -> tuple[PaymentRecord, Changes]:
    """A person's decision on a parked payment: accepted, it is applied; refused, it is recorded."""
    if not is_id(payment_id):
        raise InvalidArgument("payment_id", "must be a payment id")
    uow = uow_factory()
    async with uow:
        found = await uow.payments.get(payment_id)
    if found is None:
        raise NotFound(f"payment {payment_id} not found")
    if found.state is not pay.PaymentState.PARKED:
        raise FailedPrecondition(
            f"payment {payment_id} is {found.state.value}; only PARKED payments are reviewed"
        )
    changes = Changes()
    uow = uow_factory()
    async with uow:
        record = await _apply_payment(uow, policy, payment_id, accept_it, changes)
        await uow.commit()
    return record, changes


async def due_payments(uow: UnitOfWork, limit: int = DUE_BATCH) -> list[str]:
    """Notifications whose handling failed and whose retry is due."""
    async with uow:
        return await uow.payments.due(uow.clock.now(), limit)


async def _apply_payment(
    uow: UnitOfWork, policy: Policy, payment_id: str, reviewed: bool | None, changes: Changes
) -> PaymentRecord:
    now = uow.clock.now()
    record = await uow.payments.get(payment_id, lock=True)
    if record is None:
        raise NotFound(f"payment {payment_id} not found")
    if reviewed is None and record.state is not pay.PaymentState.RECEIVED:
        return record
    notification = record.notification
    stored = await _order_for_payment(uow.orders, notification.merchant_order_no)
    order = stored.order if stored else None
    if reviewed is False:
        verdict, reason = pay.Verdict.RECORD, "rejected by a reviewer"
        state = pay.PaymentState.REJECTED
    else:
        assessment = pay.assess(
            notification,
            order,
            now,
            policy.payment_tolerance,
            reviewed=bool(reviewed),
            providers=policy.self_run_providers,
        )
        verdict, reason = assessment.verdict, assessment.reason
        state = pay.PaymentState.PARKED if verdict is pay.Verdict.PARK else pay.PaymentState.APPLIED
    # a provider that cannot have collected the order's money writes nothing on it, not even a parked entry
    if stored is not None and pay.payable_through(
        stored.order, notification.provider, policy.self_run_providers
    ):
        await _record_on_order(uow, stored, notification, verdict, state, reason, changes)
    elif state is pay.PaymentState.PARKED:
        uow.emit(
            ServiceAlert(
                "payment_parked",
                "high",
                f"{notification.provider} {notification.transaction_id} parked: {reason}",
                order.order_id if order else "",
            )
        )
    record.state, record.reason = state, reason
    record.order_id = order.order_id if order else None
    await uow.payments.settle(record, now)
    return record


async def _record_on_order(
    uow: UnitOfWork,
    stored: Stored,
    notification: pay.PaymentNotification,
    verdict: pay.Verdict,
    state: pay.PaymentState,
    reason: str,
    changes: Changes,
) -> None:
    order = stored.order
    actor = Actor.service(notification.provider)
    summary = (
        f"{notification.provider} {notification.transaction_id}: {notification.status.value} "
        f"{notification.amount_minor} {notification.currency} paid at {notification.paid_at.isoformat()}"
    )
    if verdict is pay.Verdict.PAY:
        order.pay(
            notification.paid_at, notification.amount_minor, notification.transaction_id, uow.clock.now()
        )
    elif verdict is pay.Verdict.PARK:
        order.events.append(AlertRaised("payment_parked", "high", f"{summary} parked: {reason}"))
    elif verdict is pay.Verdict.ALERT:
        order.events.append(AlertRaised("payment_refund_reported", "medium", f"{summary}: {reason}"))
    entry = Entry(f"payment_{state.value.lower()}", actor, notification.provider, f"{summary}: {reason}")
    await save_order(uow, stored, actor, notification.provider, changes, [entry])


async def _order_for_payment(orders: Orders, merchant_order_no: str) -> Stored | None:
    """The merchant order number is our order id (with or without its hyphens: WeChat Pay's out_trade_no
    holds 32 characters), or the own shop's order number."""
    if is_id(merchant_order_no):
        stored = await orders.get(canonical(merchant_order_no), lock=True)
        if stored is not None:
            return stored
    return await orders.get_by_channel(Channel.OWN_SHOP, merchant_order_no, lock=True)


async def _payment_failed(uow: UnitOfWork, policy: Policy, payment_id: str, error: str) -> PaymentRecord:
    """Handling failed: due again after a pause, or, after the last attempt, dead-lettered and alerted."""
    async with uow:
        now = uow.clock.now()
        record = await uow.payments.attempt_failed(payment_id, error, now)
        dead = record.attempts >= policy.retry_attempts
        record.state = pay.PaymentState.DEAD if dead else pay.PaymentState.RECEIVED
        await uow.payments.retry(record, None if dead else now + policy.retry_delay)
        if dead:
            uow.emit(
                ServiceAlert(
                    "payment_dead_letter",
                    "critical",
                    f"payment {record.notification.transaction_id} failed {record.attempts} times: {error}",
                    record.order_id or "",
                )
            )
        await uow.commit()
    return record
