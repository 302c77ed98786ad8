"""The status anchor: a source system's report, kept as received, moves the order as the rules say."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import is_id
from services.orders.domain import anchor
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Channel, Order
from services.orders.domain.orchestration import Stored
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.domain.timeline import Actor, Entry
from services.orders.handlers.common import Changes, Policy, check_visible, save_order
from services.orders.handlers.ports import Orders, UnitOfWork

MAX_FIELDS_BYTES = 65_536


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
    """Keep the report; what a rule says it means moves the order (proof first, then the status).
    Returns the order, the rule's observation (None: no rule matched), whether the status changed."""
    source = report.source.strip().upper()
    if not source or len(source) > 32:
        raise InvalidArgument("source", "is required (at most 32 characters), e.g. WMS")
    if len(json.dumps(report.fields, default=str)) > MAX_FIELDS_BYTES:
        raise InvalidArgument("fields", "must be at most 64 KiB")
    observation = policy.rules.evaluate(source, report.fields)
    changes = Changes()
    async with uow:
        now = uow.clock.now()
        reported_at = report.reported_at or now
        stored = await _report_target(uow.orders, report)
        await check_visible(uow, scope, stored.order)
        order = stored.order
        await uow.sources.add_report(
            order.order_id, source, report.fields, observation, policy.rules.version, reported_at, now
        )
        actor = Actor.service(source)
        raw = observation.raw_status if observation else json.dumps(report.fields, default=str)[:200]
        extra = [Entry("source_report", actor, source, f"{source} reported {raw}" + _rule_note(observation))]
        before = order.status
        if observation is not None:
            await uow.sources.observed(order.order_id, source, observation, reported_at, now)
            extra += _apply_observation(order, observation, reported_at, now, actor)
        await save_order(uow, stored, actor, source, changes, extra)
        await uow.commit()
    return order, observation, order.status is not before, changes


def _rule_note(observation: anchor.Observation | None) -> str:
    if observation is None:
        return " (no rule matched; stored only)"
    means = "/".join(status.value for status in sorted(observation.means))
    return f" (rule {observation.rule}: means {means})"


async def _report_target(orders: Orders, report: SourceReport) -> Stored:
    if report.order_id:
        if not is_id(report.order_id):
            raise InvalidArgument("order_id", "must be an order id")
        stored = await orders.get(report.order_id, lock=True)
    elif report.channel is not None and report.channel_order_id:
        stored = await orders.get_by_channel(report.channel, report.channel_order_id, lock=True)
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
