"""Orders use cases: one function per command, each inside one unit of work.

Calls to routing and inventory (the process manager's steps) live in `orchestrator.py`; they never
run while a transaction here is open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.kit import outbox, tracing
from services.kit.db import UnitOfWork
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import is_id, new_id
from services.kit.sealing import KeyRing
from services.orders.domain import anchor, channels, lifecycle, orchestration
from services.orders.domain import payments as pay
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, Channel, IngestOrder, Order, accept, vouched
from services.orders.domain.timeline import Actor, Entry, entries_for
from services.orders.messages import alert, event_messages
from services.orders.scope import EVERYTHING, Scope, check_visible
from services.orders.store import (
    OrderRepository,
    Stored,
    count_dead_steps,
    customer_assignments_table,
    dead_steps_where,
    insert_quarantine,
    orders_table,
    payments_table,
    replay_dead_steps_where,
    source_reports_table,
    source_status_table,
    timeline_rows,
)

MAX_BATCH = 2000


class Outcome(StrEnum):
    CREATED = "CREATED"
    UNCHANGED = "UNCHANGED"
    UPDATED = "UPDATED"
    STALE = "STALE"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class ChannelPayload:
    channel: Channel | None
    payload: Mapping[str, Any]


@dataclass
class Ingested:
    index: int
    outcome: Outcome
    order: Order | None = None
    channel: Channel | None = None
    channel_order_id: str = ""
    error_field: str = ""
    error: str = ""
    pending_step: str = ""
    violations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Policy:
    """The orders service's tunables (from settings)."""

    keys: KeyRing
    rules: anchor.RuleBook
    payment_tolerance: timedelta = pay.DEFAULT_TOLERANCE
    # the providers our own shop and tills are paid through
    self_run_providers: frozenset[str] = pay.DEFAULT_SELF_RUN_PROVIDERS
    retry_attempts: int = 3
    retry_delay: timedelta = timedelta(seconds=5)
    # a step whose peer is down sleeps (1 s, 2 s, 4 s … up to the cap) for as long as this, then dead-letters
    outage_patience: timedelta = timedelta(hours=6)
    outage_backoff_initial: timedelta = timedelta(seconds=1)
    outage_backoff_max: timedelta = timedelta(seconds=30)
    # an order in an automatic state that has not moved for this long is re-driven by the sweep
    stuck_after: timedelta = timedelta(minutes=2)


@dataclass
class Changes:
    """What one unit of work did to orders, for the caller to act on after commit."""

    due_steps: set[str] = field(default_factory=set)


def history(
    order: Order,
    actor: Actor,
    source: str,
    now: datetime,
    extra: Sequence[Entry] = (),
    linked_trace_id: str = "",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the order's recorded domain events leave behind: timeline rows (then the `extra`
    entries) and outbox rows, each marked with the order id. `linked_trace_id` names the trace that
    caused a process-manager step running in the order's own trace (`omsctl trace` follows it)."""
    entries = [*entries_for(order.events, actor, source), *extra]
    timeline = timeline_rows(order.order_id, entries, now, tracing.current_trace_id(), linked_trace_id)
    events = [
        {**outbox.event_row(subject, message, now), "order_id": order.order_id}
        for subject, message in event_messages(order)
    ]
    return timeline, events


# ---- ingest ------------------------------------------------------------------------------------


async def ingest(
    uow: UnitOfWork, policy: Policy, items: Sequence[IngestOrder | ChannelPayload], actor: Actor
) -> tuple[list[Ingested], Changes]:
    """Store every valid item once, in one transaction; each item gets its own result.

    New orders go in with one statement for the whole batch; the unique constraint on
    (channel, channel order id) answers "does it exist?" inside that statement. Items that already
    exist are then revised one by one, newest version wins.
    """
    if len(items) > MAX_BATCH:
        raise InvalidArgument("items", f"at most {MAX_BATCH} orders per batch")
    now = uow.clock.now()
    results: list[Ingested] = []
    accepted: list[tuple[int, Order, IngestOrder, bytes]] = []
    quarantined: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            command, raw = _command(item)
            order = accept(command, new_id(), now)
        except InvalidArgument as error:
            channel = item.channel
            ref = (
                channels.channel_order_ref(item.channel, item.payload)
                if isinstance(item, ChannelPayload) and item.channel
                else getattr(item, "channel_order_id", "")
            )
            results.append(
                Ingested(
                    index,
                    Outcome.REJECTED,
                    None,
                    channel,
                    ref,
                    error.field,
                    error.problem,
                    violations=error.violations,
                )
            )
            if isinstance(item, ChannelPayload):
                quarantined.append(_quarantine_row(policy.keys, item, ref, error, now))
            continue
        results.append(Ingested(index, Outcome.CREATED, order, order.channel, order.channel_order_id))
        accepted.append((index, order, command, raw))
    changes = Changes()
    async with uow:
        repo = OrderRepository(uow.conn, policy.keys)
        for row in quarantined:
            await insert_quarantine(uow.conn, row)
        new_rows = []
        for _, order, _, raw in accepted:
            timeline, events = history(order, actor, order.channel.value, now)
            step = orchestration.next_step(order, orchestration.StockState.NONE)
            new_rows.append((order, timeline, events, step.value if step else None, raw))
        inserted = await repo.add_new(new_rows, tracing.current_traceparent()) if new_rows else set()
        for index, order, command, _ in accepted:
            if order.order_id in inserted:
                step = orchestration.next_step(order, orchestration.StockState.NONE)
                if step:
                    changes.due_steps.add(order.order_id)
                    results[index].pending_step = step.value
                continue
            results[index] = await _revise_existing(uow, repo, index, command, actor, changes)
        await uow.commit()
    return results, changes


def _command(item: IngestOrder | ChannelPayload) -> tuple[IngestOrder, bytes]:
    if isinstance(item, IngestOrder):
        return item, b""
    if item.channel is None:
        raise InvalidArgument("channel", "is required")
    command = vouched(channels.parse(item.channel, item.payload))
    return command, json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False).encode()


def _quarantine_row(
    keys: KeyRing, item: ChannelPayload, ref: str, error: InvalidArgument, now: datetime
) -> dict[str, Any]:
    quarantine_id = new_id()
    payload = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return {
        "quarantine_id": quarantine_id,
        "channel": item.channel.value if item.channel else "",
        "channel_order_id": ref[:128],
        "error_field": error.field,
        "reason": error.problem,
        "sealed_payload": keys.seal(payload, quarantine_id),
        "received_at": now,
    }


async def _revise_existing(
    uow: UnitOfWork, repo: OrderRepository, index: int, command: IngestOrder, actor: Actor, changes: Changes
) -> Ingested:
    assert command.channel is not None
    stored = await repo.get_by_channel(command.channel, command.channel_order_id, lock=True)
    if stored is None:  # inserted and deleted in between: cannot happen without manual surgery
        raise FailedPrecondition(f"channel order {command.channel_order_id} vanished; retry")
    order = stored.order
    version = order.version
    incoming, current = command.channel_modified_at, order.channel_modified_at
    step = stored.step or ""
    if incoming is None or (current is not None and incoming == current):
        return Ingested(
            index, Outcome.UNCHANGED, order, order.channel, order.channel_order_id, pending_step=step
        )
    if current is not None and incoming < current:
        return Ingested(index, Outcome.STALE, order, order.channel, order.channel_order_id, pending_step=step)
    order.revise(command, uow.clock.now())
    await save_order(uow, repo, stored, version, actor, order.channel.value, changes)
    return Ingested(
        index, Outcome.UPDATED, order, order.channel, order.channel_order_id, pending_step=stored.step or ""
    )


async def save_order(
    uow: UnitOfWork,
    repo: OrderRepository,
    stored: Stored,
    version: int,
    actor: Actor,
    source: str,
    changes: Changes,
    extra: list[Entry] | None = None,
    step_done: bool = False,
    linked_trace_id: str = "",
) -> None:
    """Write back a changed order with its events and timeline, and schedule its next step: one
    statement. `step_done` says the process manager finished the order's current step. A newly
    scheduled step remembers the trace that scheduled it (its span links there)."""
    order = stored.order
    now = uow.clock.now()
    rows, events = history(order, actor, source, now, extra or (), linked_trace_id)
    step = orchestration.next_step(order, orchestration.StockState(stored.stock_state))
    wanted = step.value if step else None
    schedule = (wanted, now if wanted else None) if step_done or wanted != stored.step else None
    await repo.save(stored, version, rows, events, schedule, tracing.current_traceparent())
    if wanted:
        changes.due_steps.add(order.order_id)
    order.events.clear()


# ---- reads -------------------------------------------------------------------------------------


async def get_order(uow: UnitOfWork, keys: KeyRing, order_id: str, scope: Scope = EVERYTHING) -> Stored:
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
    async with uow:
        stored = await OrderRepository(uow.conn, keys).get(order_id)
        if stored is None:
            raise NotFound(f"order {order_id} not found")
        await check_visible(uow.conn, scope, stored.order)
    return stored


async def get_order_by_channel(
    uow: UnitOfWork, keys: KeyRing, channel: Channel | None, channel_order_id: str, scope: Scope = EVERYTHING
) -> Stored:
    if channel is None:
        raise InvalidArgument("channel", "is required")
    if not channel_order_id or len(channel_order_id) > 64:
        raise InvalidArgument("channel_order_id", "is required (at most 64 characters)")
    async with uow:
        stored = await OrderRepository(uow.conn, keys).get_by_channel(channel, channel_order_id)
        if stored is None:
            raise NotFound(f"{channel.value} order {channel_order_id} not found")
        await check_visible(uow.conn, scope, stored.order)
    return stored


# ---- manual actions ----------------------------------------------------------------------------


async def _change(
    uow: UnitOfWork,
    policy: Policy,
    order_id: str,
    actor: Actor,
    change: Callable[[Order, datetime], object],
    scope: Scope = EVERYTHING,
) -> tuple[Order, Changes]:
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
    changes = Changes()
    async with uow:
        repo = OrderRepository(uow.conn, policy.keys)
        stored = await repo.get(order_id, lock=True)
        if stored is None:
            raise NotFound(f"order {order_id} not found")
        await check_visible(uow.conn, scope, stored.order)
        version = stored.order.version
        try:
            change(stored.order, uow.clock.now())
        except lifecycle.IllegalTransition as error:
            raise FailedPrecondition(str(error)) from None
        await save_order(
            uow, repo, stored, version, actor, "console" if actor.type == "user" else actor.id, changes
        )
        await uow.commit()
    return stored.order, changes


def _reason(reason: str, default: str) -> str:
    reason = reason.strip() or default
    if len(reason) > 500:
        raise InvalidArgument("reason", "must be at most 500 characters")
    return reason


async def cancel_order(
    uow: UnitOfWork, policy: Policy, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    text = _reason(reason, "cancelled by " + actor.id)
    return await _change(uow, policy, order_id, actor, lambda order, now: order.cancel(text, now), scope)


async def hold_order(
    uow: UnitOfWork, policy: Policy, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    if not reason.strip():
        raise InvalidArgument("reason", "is required: say what the review is for")
    text = _reason(reason, "")
    return await _change(uow, policy, order_id, actor, lambda order, now: order.hold(text, now), scope)


async def release_order(
    uow: UnitOfWork, policy: Policy, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    text = _reason(reason, "released by " + actor.id)
    return await _change(uow, policy, order_id, actor, lambda order, now: order.release(text, now), scope)


# ---- payments ----------------------------------------------------------------------------------


@dataclass
class PaymentRecord:
    payment_id: str
    notification: pay.PaymentNotification
    order_id: str | None
    state: pay.PaymentState
    reason: str
    attempts: int
    received_at: datetime


async def report_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, notification: pay.PaymentNotification
) -> tuple[PaymentRecord, bool, Changes]:
    """Store first (its own transaction), then handle. A failure while handling leaves the
    notification stored and due for a retry; it is never lost and never answered with an error."""
    pay.validate(notification)
    uow = uow_factory()
    async with uow:
        now = uow.clock.now()
        payment_id = new_id()
        inserted = (
            await uow.conn.execute(insert_payment(payment_id, notification, now, policy.retry_delay))
        ).first()
        await uow.commit()
    if inserted is None:
        return await _payment_by_transaction(uow_factory(), notification), True, Changes()
    record_, changes = await handle_payment(uow_factory, policy, payment_id)
    return record_, False, changes


def insert_payment(
    payment_id: str, notification: pay.PaymentNotification, now: datetime, delay: timedelta
) -> Any:
    return (
        insert(payments_table)
        .values(
            payment_id=payment_id,
            provider=notification.provider,
            transaction_id=notification.transaction_id,
            merchant_order_no=notification.merchant_order_no,
            currency=notification.currency,
            amount_minor=notification.amount_minor,
            paid_at=notification.paid_at,
            status=notification.status.value,
            state=pay.PaymentState.RECEIVED.value,
            reason="",
            attempts=0,
            next_attempt_at=now + delay,
            received_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(constraint="payments_transaction_unique")
        .returning(payments_table.c.payment_id)
    )


async def _payment_by_transaction(uow: UnitOfWork, notification: pay.PaymentNotification) -> PaymentRecord:
    async with uow:
        row = (
            await uow.conn.execute(
                select(payments_table).where(
                    payments_table.c.provider == notification.provider,
                    payments_table.c.transaction_id == notification.transaction_id,
                )
            )
        ).first()
    assert row is not None
    return payment_record(row._mapping)


def payment_record(row: Any) -> PaymentRecord:
    return PaymentRecord(
        payment_id=row["payment_id"],
        notification=pay.PaymentNotification(
            provider=row["provider"],
            transaction_id=row["transaction_id"],
            merchant_order_no=row["merchant_order_no"],
            currency=row["currency"],
            amount_minor=row["amount_minor"],
            paid_at=row["paid_at"],
            status=pay.PaymentStatus(row["status"]),
        ),
        order_id=row["order_id"],
        state=pay.PaymentState(row["state"]),
        reason=row["reason"],
        attempts=row["attempts"],
        received_at=row["received_at"],
    )


async def handle_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, payment_id: str, reviewed: bool | None = None
) -> tuple[PaymentRecord, Changes]:
    """Apply, park or record one stored notification. `reviewed` is a reviewer's decision."""
    changes = Changes()
    uow = uow_factory()
    try:
        async with uow:
            record_ = await _apply_payment(uow, policy, payment_id, reviewed, changes)
            await uow.commit()
        return record_, changes
    except Exception as error:
        failed = await _payment_failed(uow_factory(), policy, payment_id, f"{type(error).__name__}: {error}")
        return failed, Changes()


async def _apply_payment(
    uow: UnitOfWork, policy: Policy, payment_id: str, reviewed: bool | None, changes: Changes
) -> PaymentRecord:
    now = uow.clock.now()
    row = (
        await uow.conn.execute(
            select(payments_table).where(payments_table.c.payment_id == payment_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"payment {payment_id} not found")
    record_ = payment_record(row._mapping)
    if reviewed is None and record_.state is not pay.PaymentState.RECEIVED:
        return record_
    notification = record_.notification
    repo = OrderRepository(uow.conn, policy.keys)
    stored = await _order_for_payment(repo, notification.merchant_order_no)
    order = stored.order if stored else None
    # a provider that cannot have collected the order's money writes nothing on it, not even a parked entry
    touches_order = order is not None and pay.payable_through(
        order, notification.provider, policy.self_run_providers
    )
    actor = Actor.service(notification.provider)
    if reviewed is False:
        state, reason = pay.PaymentState.REJECTED, "rejected by a reviewer"
        verdict = pay.Verdict.RECORD
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
    extra: list[Entry] = []
    if stored is not None and order is not None and touches_order:
        version = order.version
        summary = (
            f"{notification.provider} {notification.transaction_id}: {notification.status.value} "
            f"{notification.amount_minor} {notification.currency} paid at {notification.paid_at.isoformat()}"
        )
        if verdict is pay.Verdict.PAY:
            order.pay(notification.paid_at, notification.amount_minor, notification.transaction_id, now)
        elif verdict is pay.Verdict.PARK:
            order.events.append(AlertRaised("payment_parked", "high", f"{summary} parked: {reason}"))
        elif verdict is pay.Verdict.ALERT:
            order.events.append(AlertRaised("payment_refund_reported", "medium", f"{summary}: {reason}"))
        extra.append(
            Entry(f"payment_{state.value.lower()}", actor, notification.provider, f"{summary}: {reason}")
        )
        await save_order(uow, repo, stored, version, actor, notification.provider, changes, extra)
    elif state is pay.PaymentState.PARKED:
        uow.publish(
            "alerts.raised",
            alert(
                "payment_parked",
                "high",
                order.order_id if order else "",
                f"{notification.provider} {notification.transaction_id} parked: {reason}",
            ),
        )
    await uow.conn.execute(
        update(payments_table)
        .where(payments_table.c.payment_id == payment_id)
        .values(
            state=state.value,
            reason=reason,
            order_id=order.order_id if order else None,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    record_.state, record_.reason = state, reason
    record_.order_id = order.order_id if order else None
    return record_


async def _order_for_payment(repo: OrderRepository, merchant_order_no: str) -> Stored | None:
    """The merchant order number is our order id, or the own shop's order number."""
    if is_id(merchant_order_no):
        stored = await repo.get(merchant_order_no, lock=True)
        if stored is not None:
            return stored
    return await repo.get_by_channel(Channel.OWN_SHOP, merchant_order_no, lock=True)


async def _payment_failed(uow: UnitOfWork, policy: Policy, payment_id: str, error: str) -> PaymentRecord:
    async with uow:
        now = uow.clock.now()
        row = (
            await uow.conn.execute(
                update(payments_table)
                .where(payments_table.c.payment_id == payment_id)
                .values(attempts=payments_table.c.attempts + 1, reason=error[:2000], updated_at=now)
                .returning(payments_table)
            )
        ).first()
        assert row is not None
        dead = row.attempts >= policy.retry_attempts
        await uow.conn.execute(
            update(payments_table)
            .where(payments_table.c.payment_id == payment_id)
            .values(
                state=pay.PaymentState.DEAD.value if dead else pay.PaymentState.RECEIVED.value,
                next_attempt_at=None if dead else now + policy.retry_delay,
            )
        )
        if dead:
            uow.publish(
                "alerts.raised",
                alert(
                    "payment_dead_letter",
                    "critical",
                    row.order_id or "",
                    f"payment {row.transaction_id} failed {row.attempts} times: {error}",
                ),
            )
        await uow.commit()
    record_ = payment_record(row._mapping)
    record_.state = pay.PaymentState.DEAD if dead else pay.PaymentState.RECEIVED
    return record_


async def due_payments(uow: UnitOfWork, limit: int = 100) -> list[str]:
    async with uow:
        rows = await uow.conn.execute(
            select(payments_table.c.payment_id)
            .where(
                payments_table.c.state == pay.PaymentState.RECEIVED.value,
                payments_table.c.next_attempt_at <= uow.clock.now(),
            )
            .order_by(payments_table.c.next_attempt_at)
            .limit(limit)
        )
        return [row.payment_id for row in rows]


async def review_payment(
    uow_factory: Callable[[], UnitOfWork], policy: Policy, payment_id: str, accept_it: bool
) -> tuple[PaymentRecord, Changes]:
    if not is_id(payment_id):
        raise InvalidArgument("payment_id", "must be a payment id")
    uow = uow_factory()
    async with uow:
        row = (
            await uow.conn.execute(select(payments_table).where(payments_table.c.payment_id == payment_id))
        ).first()
    if row is None:
        raise NotFound(f"payment {payment_id} not found")
    if row.state != pay.PaymentState.PARKED.value:
        raise FailedPrecondition(f"payment {payment_id} is {row.state}; only PARKED payments are reviewed")
    changes = Changes()
    uow = uow_factory()
    async with uow:
        record_ = await _apply_payment(uow, policy, payment_id, accept_it, changes)
        await uow.commit()
    return record_, changes


# ---- status anchor -----------------------------------------------------------------------------


@dataclass
class SourceReport:
    source: str
    order_id: str
    channel: Channel | None
    channel_order_id: str
    fields: dict[str, Any]
    reported_at: datetime | None


async def report_source_status(
    uow: UnitOfWork, policy: Policy, report: SourceReport, scope: Scope = EVERYTHING
) -> tuple[Order, anchor.Observation | None, bool, Changes]:
    source = report.source.strip().upper()
    if not source or len(source) > 32:
        raise InvalidArgument("source", "is required (at most 32 characters), e.g. WMS")
    if len(json.dumps(report.fields, default=str)) > 65_536:
        raise InvalidArgument("fields", "must be at most 64 KiB")
    observation = policy.rules.evaluate(source, report.fields)
    changes = Changes()
    async with uow:
        now = uow.clock.now()
        reported_at = report.reported_at or now
        repo = OrderRepository(uow.conn, policy.keys)
        stored = await _report_target(repo, report)
        await check_visible(uow.conn, scope, stored.order)
        order = stored.order
        version = order.version
        await uow.conn.execute(
            source_reports_table.insert().values(
                order_id=order.order_id,
                source=source,
                fields=report.fields,
                rule=observation.rule if observation else "",
                rules_version=policy.rules.version,
                reported_at=reported_at,
                received_at=now,
            )
        )
        actor = Actor.service(source)
        raw = observation.raw_status if observation else json.dumps(report.fields, default=str)[:200]
        extra = [Entry("source_report", actor, source, f"{source} reported {raw}" + _rule_note(observation))]
        before = order.status
        if observation is not None:
            await _upsert_source_status(uow, order.order_id, source, observation, reported_at, now)
            extra += _apply_observation(order, observation, reported_at, now, actor)
        await save_order(uow, repo, stored, version, actor, source, changes, extra)
        await uow.commit()
    return order, observation, order.status is not before, changes


def _rule_note(observation: anchor.Observation | None) -> str:
    if observation is None:
        return " (no rule matched; stored only)"
    means = "/".join(status.value for status in sorted(observation.means))
    return f" (rule {observation.rule}: means {means})"


async def _report_target(repo: OrderRepository, report: SourceReport) -> Stored:
    if report.order_id:
        if not is_id(report.order_id):
            raise InvalidArgument("order_id", "must be an order id")
        stored = await repo.get(report.order_id, lock=True)
    elif report.channel is not None and report.channel_order_id:
        stored = await repo.get_by_channel(report.channel, report.channel_order_id, lock=True)
    else:
        raise InvalidArgument("order_id", "name the order: order_id, or channel and channel_order_id")
    if stored is None:
        raise NotFound("order not found")
    return stored


def _apply_observation(
    order: Order, observation: anchor.Observation, reported_at: datetime, now: datetime, actor: Actor
) -> list[Entry]:
    """Proof first (waybill, scan-out), then the transition; SHIPPED waits for both proofs."""
    notes = []
    scanned = reported_at if observation.scanned_out else None
    for name in order.record_proof(observation.waybill_no, scanned, now):
        notes.append(Entry("proof", actor, observation.source, f"{name} recorded"))
        if name == "scanned_out_at":
            notes.append(Entry("scanned_out", actor, observation.source, "scanned out of the warehouse"))
    target = observation.status
    if target is None or target is order.status:
        return notes
    if target is OrderStatus.SHIPPED and not order.has_shipping_proof:
        missing = "scan-out" if order.waybill_no else "waybill number"
        notes.append(
            Entry(
                "waiting_for_proof", actor, observation.source, f"shipped reported; still needs the {missing}"
            )
        )
        return notes
    order.move_to(target, f"{observation.source} {observation.raw_status} (rule {observation.rule})", now)
    return notes


async def _upsert_source_status(
    uow: UnitOfWork,
    order_id: str,
    source: str,
    observation: anchor.Observation,
    reported_at: datetime,
    now: datetime,
) -> None:
    values = {
        "raw_status": observation.raw_status[:500],
        "means": [status.value for status in observation.means],
        "rule": observation.rule,
        "reported_at": reported_at,
        "received_at": now,
    }
    statement = insert(source_status_table).values(order_id=order_id, source=source, **values)
    # a late report of an older event never overwrites the source's newer word
    await uow.conn.execute(
        statement.on_conflict_do_update(
            index_elements=["order_id", "source"],
            set_=values,
            where=source_status_table.c.reported_at <= statement.excluded.reported_at,
        )
    )


# ---- dead letters ------------------------------------------------------------------------------


async def replay_step(uow: UnitOfWork, order_id: str) -> None:
    async with uow:
        result = await uow.conn.execute(
            update(orders_table)
            .where(and_(orders_table.c.order_id == order_id, orders_table.c.step_dead.is_(True)))
            .values(
                step_dead=False,
                step_attempts=0,
                step_due_at=uow.clock.now(),
                # a replay starts a fresh wait: the patience counts from the next outage, not the last
                step_pauses=0,
                step_paused_since=None,
                step_waiting_for=None,
            )
            .returning(orders_table.c.order_id)
        )
        if result.first() is None:
            raise NotFound(f"no dead-lettered step for order {order_id}")
        await uow.commit()


async def replay_payment(uow: UnitOfWork, payment_id: str) -> None:
    async with uow:
        result = await uow.conn.execute(
            update(payments_table)
            .where(
                payments_table.c.payment_id == payment_id,
                payments_table.c.state == pay.PaymentState.DEAD.value,
            )
            .values(state=pay.PaymentState.RECEIVED.value, attempts=0, next_attempt_at=uow.clock.now())
            .returning(payments_table.c.payment_id)
        )
        if result.first() is None:
            raise NotFound(f"no dead-lettered payment {payment_id}")
        await uow.commit()


def check_order_id(order_id: str) -> None:
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")


async def reservation_expired(uow: UnitOfWork, policy: Policy, order_id: str) -> Changes:
    """Inventory let an unpaid reservation lapse: the order is cancelled and operations hear of it.
    A paid order whose commit had not happened yet reserves again instead. Runs in the caller's
    transaction (the consumer's inbox)."""
    changes = Changes()
    repo = OrderRepository(uow.conn, policy.keys)
    stored = await repo.get(order_id, lock=True) if is_id(order_id) else None
    if stored is None or stored.stock_state != orchestration.StockState.RESERVED.value:
        return changes
    order = stored.order
    version = order.version
    now = uow.clock.now()
    stored.stock_state = orchestration.StockState.RELEASED.value
    actor = Actor.service("inventory")
    if order.status is OrderStatus.PENDING_PAYMENT and not order.is_paid:
        order.cancel("unpaid: the stock reservation expired", now)
        order.events.append(
            AlertRaised("reservation_expired", "low", "unpaid order cancelled: reservation expired")
        )
    extra = [Entry("stock_released", actor, "inventory", "the reservation expired")]
    await save_order(uow, repo, stored, version, actor, "inventory", changes, extra)
    return changes


async def assign_customers(uow: UnitOfWork, agent_id: str, buyer_ids: list[str], replace: bool) -> list[str]:
    agent = agent_id.strip()
    if not agent or len(agent) > 128:
        raise InvalidArgument("agent_id", "is required (at most 128 characters)")
    if len(buyer_ids) > 10_000:
        raise InvalidArgument("buyer_ids", "at most 10000 per call")
    for index, buyer in enumerate(buyer_ids):
        if not buyer.strip() or len(buyer) > 128:
            raise InvalidArgument(f"buyer_ids[{index}]", "must be 1-128 characters")
    table = customer_assignments_table
    async with uow:
        if replace:
            await uow.conn.execute(table.delete().where(table.c.agent_id == agent))
        if buyer_ids:
            await uow.conn.execute(
                insert(table).on_conflict_do_nothing(),
                [
                    {"agent_id": agent, "buyer_id": b, "assigned_at": uow.clock.now()}
                    for b in dict.fromkeys(buyer_ids)
                ],
            )
        rows = await uow.conn.execute(
            select(table.c.buyer_id).where(table.c.agent_id == agent).order_by(table.c.buyer_id)
        )
        assigned = [row.buyer_id for row in rows]
        await uow.commit()
    return assigned


UNROUTABLE = "unroutable: "


async def route_found(uow: UnitOfWork, policy: Policy, order_id: str) -> Changes:
    """Routing planned an order it had parked (stock arrived): an order held only because it could
    not be routed resumes, and the process manager reserves it. Runs in the consumer's transaction."""
    changes = Changes()
    repo = OrderRepository(uow.conn, policy.keys)
    stored = await repo.get(order_id, lock=True) if is_id(order_id) else None
    if stored is None:
        return changes
    order = stored.order
    if order.status is not OrderStatus.ON_HOLD or not order.status_reason.startswith(UNROUTABLE):
        return changes
    version = order.version
    order.release("routing found a warehouse", uow.clock.now())
    await save_order(uow, repo, stored, version, Actor.service("routing"), "routing", changes)
    return changes


# ---- orders nothing else would move --------------------------------------------------------------

# Held for stock (see store's _HELD_FOR_STOCK): the reservation at the planned warehouses was refused,
# or routing parked the order as out of stock, or it was paid with no stock left (frozen). Stock
# arriving for one of its SKUs (or the sweep) plans it again.
STOCK_ARRIVED_BATCH = 1000


async def stock_arrived(uow: UnitOfWork, policy: Policy, sku: str) -> Changes:
    """Stock of `sku` arrived (receipt, count, restock, back in stock): every order held for stock
    that wants it is released and planned again, whoever won the race that left it short. Orders
    owns this retry itself; routing's parked list covers only what routing parked. Runs in the
    consumer's transaction."""
    changes = Changes()
    if not sku:
        return changes
    repo = OrderRepository(uow.conn, policy.keys)
    now = uow.clock.now()
    for stored in await repo.held_for_stock(sku, STOCK_ARRIVED_BATCH):
        version = stored.order.version
        stored.order.release(f"stock of {sku} arrived: planning again", now)
        await save_order(uow, repo, stored, version, Actor.service("inventory"), "inventory", changes)
    return changes


@dataclass(frozen=True)
class Sweep:
    redriven: list[str]
    replanned: list[str]
    not_taken: int  # steps due for longer than allowed that no worker took


async def sweep_stuck(uow: UnitOfWork, policy: Policy, limit: int = 500) -> tuple[Sweep, Changes]:
    """Orders that have not moved for longer than their state allows: an automatic state nobody owns
    gets its step again, a hold for stock is planned again, and due steps no worker takes raise an
    alert saying so (the process manager is not running, or is far behind)."""
    changes = Changes()
    actor = Actor.service("orders")
    async with uow:
        now = uow.clock.now()
        before = now - policy.stuck_after
        repo = OrderRepository(uow.conn, policy.keys)
        redriven, replanned = [], []
        for stored in await repo.unowned(before, limit):
            version = stored.order.version
            note = Entry("redriven", actor, "orders", "sweep: no step owned this order; driving it again")
            await save_order(uow, repo, stored, version, actor, "orders", changes, [note], step_done=True)
            redriven.append(stored.order.order_id)
        for stored in await repo.held_for_stock_since(before, limit):
            version = stored.order.version
            stored.order.release("sweep: still held for stock; planning again", now)
            await save_order(uow, repo, stored, version, actor, "orders", changes)
            replanned.append(stored.order.order_id)
        not_taken = await repo.count_not_taken(before)
        if not_taken:
            uow.publish(
                "alerts.raised",
                alert(
                    "order_steps_not_taken",
                    "high",
                    "",
                    f"{not_taken} order steps have been due for over {policy.stuck_after} and no worker took "
                    "them: is an orders process manager running (PROCESS_MANAGER_CONCURRENCY > 0)?",
                ),
            )
        await uow.commit()
    return Sweep(redriven, replanned, not_taken), changes


@dataclass(frozen=True)
class BulkReplay:
    matched: int
    replayed: list[str]


MAX_BULK_REPLAY = 10_000


async def replay_dead_steps(
    uow: UnitOfWork,
    reason_contains: str,
    failed_from: datetime | None,
    failed_to: datetime | None,
    max_steps: int,
    dry_run: bool,
) -> BulkReplay:
    """Every dead-lettered step matching the filters (error text, failure time) runs again, in one
    statement; a dry run only counts them."""
    if len(reason_contains) > 500:
        raise InvalidArgument("reason_contains", "must be at most 500 characters")
    if failed_from and failed_to and failed_from > failed_to:
        raise InvalidArgument("failed_to", "must not be before failed_from")
    if not 0 <= max_steps <= MAX_BULK_REPLAY:
        raise InvalidArgument("max_steps", f"must be between 1 and {MAX_BULK_REPLAY} (0: {MAX_BULK_REPLAY})")
    async with uow:
        where = dead_steps_where(reason_contains, failed_from, failed_to)
        matched = await count_dead_steps(uow.conn, where)
        replayed: list[str] = []
        if not dry_run and matched:
            replayed = await replay_dead_steps_where(
                uow.conn, where, max_steps or MAX_BULK_REPLAY, uow.clock.now()
            )
        await uow.commit()
    return BulkReplay(matched, replayed)
