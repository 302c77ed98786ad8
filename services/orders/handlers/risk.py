"""Risk: judging orders as they are accepted (the active rule set, cached for a few seconds), the
review queue of the `risk` role, and the rule sets' life: draft, dry run, activation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.orders.domain import risk
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, HoldCause, Order, OrderUpdated, RiskHeld
from services.orders.domain.timeline import Actor
from services.orders.handlers.common import Changes, locked_order, save_order
from services.orders.handlers.ports import UnitOfWork
from services.orders.handlers.risk_cache import RiskRules

WINDOW = timedelta(hours=1)  # the velocity rule's window
DEFAULT_REPLAYED = 1000
MAX_REPLAYED = 10_000
NOTE_LENGTH = 500


async def ensure_default_risk_rules(uow: UnitOfWork, by: str = "orders") -> None:
    """A new installation starts with DOMAIN's default rules active, as version 1."""
    async with uow:
        await uow.risk.lock_versions()
        if await uow.risk.active() is None and await uow.risk.get(1) is None:
            now = uow.clock.now()
            document = risk.default_document()
            await uow.risk.add(risk.RuleSetRecord(1, "active", document, "default rules", now, by, now))
        await uow.commit()


# ---- judging orders as they are accepted ------------------------------------------------------------


def _district(order: Order) -> str:
    address = order.shipping_address
    return f"{address.province}/{address.city}/{address.district}"


# a revised order is judged again only while holding it still stops something
JUDGED_AGAIN_IN = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.ALLOCATED})


def worth_judging_again(order: Order) -> bool:
    """A channel's revision changed the delivery address of an order not yet being picked."""
    changed = any(
        isinstance(event, OrderUpdated) and "shipping_address" in event.fields for event in order.events
    )
    return changed and order.status in JUDGED_AGAIN_IN


async def judge(
    uow: UnitOfWork,
    rule_set: risk.RuleSet,
    orders: Sequence[Order],
    now: datetime,
    revision: bool = False,
) -> list[tuple[str, risk.Evaluation, dict[str, Any]]]:
    """Judge newly accepted orders (inside the caller's transaction): a hold hits → the order is held
    for the `risk` review queue with an alert; an alert rule hits → its roles are told. Returns each
    order's evaluation and facts, to be stored with the orders that were inserted."""
    phones = sorted({order.shipping_address.phone for order in orders if order.shipping_address.phone})
    history = await uow.risk.phone_history(phones, now - WINDOW) if phones else {}
    seen: dict[str, tuple[int, set[str]]] = {
        phone: (count, set(places)) for phone, (count, places) in history.items()
    }
    judged: list[tuple[str, risk.Evaluation, dict[str, Any]]] = []
    for order in orders:  # in arrival order: the 5th of a burst sees the four before it
        phone = order.shipping_address.phone
        if phone:
            count, places = seen.get(phone, (0, set()))
            places = places | {_district(order)}
            # a revised order is already among the phone's orders (under its former address too)
            count = max(count, 1) if revision else count + 1
            seen[phone] = (count, places)
            facts = risk.order_facts(order, count, len(places))
        else:
            facts = risk.order_facts(order, 1, 1)
        evaluation = risk.evaluate(rule_set, facts)
        _act(order, evaluation, now)
        judged.append((order.order_id, evaluation, facts))
    return judged


def _act(order: Order, evaluation: risk.Evaluation, now: datetime) -> None:
    if evaluation.outcome is risk.Outcome.HELD:
        if order.status in JUDGED_AGAIN_IN:
            order.hold(evaluation.reason, now, HoldCause.RISK)
        order.events.append(
            RiskHeld(evaluation.version, evaluation.score, tuple(evaluation.hits), evaluation.frozen)
        )
        severity = "high" if evaluation.frozen else "medium"
        text = f"{evaluation.reason} (score {evaluation.score}, rule set v{evaluation.version})"
        order.events.append(AlertRaised("risk_held", severity, text, evaluation.notify))
    elif evaluation.notify:
        hits = ", ".join(evaluation.hits)
        order.events.append(AlertRaised("risk_alert", "medium", f"risk rules hit: {hits}", evaluation.notify))


# ---- the review queue ------------------------------------------------------------------------------


async def risk_evaluation(uow: UnitOfWork, order_id: str) -> risk.EvaluationRecord:
    async with uow:
        found = await uow.risk.latest(order_id)
    if found is None:
        raise NotFound(f"order {order_id} has no risk evaluation")
    return found


async def review_risk_hold(
    uow: UnitOfWork, order_id: str, approve: bool, note: str, actor: Actor
) -> tuple[Order, Changes]:
    """The reviewer's decision on an order the risk rules held: approved → released to where it was,
    cancelled → cancelled (its stock released); recorded on the evaluation for the rule statistics."""
    note = note.strip()[:NOTE_LENGTH]
    changes = Changes()
    async with uow:
        stored = await locked_order(uow, order_id)
        order = stored.order
        if order.status is not OrderStatus.ON_HOLD or order.hold_cause is not HoldCause.RISK:
            raise FailedPrecondition(
                f"order {order_id} is not held for risk review (it is {order.status.value})"
            )
        evaluation = await uow.risk.latest(order_id, held_unreviewed=True)
        now = uow.clock.now()
        who = actor.id
        if approve:
            order.release(f"risk review: approved by {who}" + (f": {note}" if note else ""), now)
        else:
            order.cancel(f"risk review: cancelled by {who}" + (f": {note}" if note else ""), now)
        if evaluation is not None:
            await uow.risk.review(
                evaluation.evaluation_id, "approved" if approve else "cancelled", who, now, note
            )
        await save_order(uow, stored, actor, "risk", changes)
        await uow.commit()
    return order, changes


async def rule_stats(uow: UnitOfWork, days: int) -> list[risk.RuleStats]:
    if not 0 <= days <= 366:
        raise InvalidArgument("days", "must be between 1 and 366 (0 means 30)")
    async with uow:
        return await uow.risk.rule_stats(uow.clock.now() - timedelta(days=days or 30))


# ---- rule sets ---------------------------------------------------------------------------------------


async def get_rule_set(uow: UnitOfWork, version: int) -> risk.RuleSetRecord:
    """The rule set of this version; 0: the active one."""
    if version < 0:
        raise InvalidArgument("version", "must not be negative (0 is the active rule set)")
    async with uow:
        found = await (uow.risk.active() if version == 0 else uow.risk.get(version))
    if found is None:
        raise NotFound(f"risk rule set {version or 'active'} not found")
    return found


def parse_document(document_json: str) -> dict[str, Any]:
    try:
        document = json.loads(document_json)
    except json.JSONDecodeError as error:
        raise InvalidArgument("document_json", f"is not JSON: {error.msg} at {error.pos}") from None
    try:
        risk.rule_set_from_document(0, document)
    except risk.InvalidRiskRules as error:
        raise InvalidArgument(f"document_json.{error.path}", error.problem) from None
    return dict(document)


async def save_draft(uow: UnitOfWork, document_json: str, note: str, by: str) -> risk.RuleSetRecord:
    document = parse_document(document_json)
    async with uow:
        await uow.risk.lock_versions()
        now = uow.clock.now()
        record = risk.RuleSetRecord(0, "draft", document, note.strip()[:NOTE_LENGTH], now, by, None)
        version = await uow.risk.add(record)
        await uow.commit()
    return risk.RuleSetRecord(version, record.status, document, record.note, now, by, None)


async def dry_run(uow: UnitOfWork, version: int, last_orders: int) -> risk.DryRun:
    """Replay a rule set on the facts of the last N orders (default 1,000): how many it would hold,
    per rule how many it would hit, and which orders change."""
    if not 0 <= last_orders <= MAX_REPLAYED:
        raise InvalidArgument(
            "last_orders", f"must be between 1 and {MAX_REPLAYED} (0 means {DEFAULT_REPLAYED})"
        )
    stored = await get_rule_set(uow, version)
    rule_set = risk.rule_set_from_document(stored.version, stored.document)
    async with uow:
        recorded = await uow.risk.recent_facts(last_orders or DEFAULT_REPLAYED)
    return risk.dry_run(rule_set, recorded)


async def activate(uow: UnitOfWork, version: int, by: str, rules: RiskRules) -> risk.RuleSetRecord:
    if version <= 0:
        raise InvalidArgument("version", "must name a rule set version")
    async with uow:
        await uow.risk.lock_versions()
        found = await uow.risk.get(version)
        if found is None:
            raise NotFound(f"risk rule set {version} not found")
        if found.status == "active":
            raise FailedPrecondition(f"risk rule set {version} is already active")
        await uow.risk.activate(version, uow.clock.now(), by)
        await uow.commit()
    rules.forget()
    return await get_rule_set(uow, version)
