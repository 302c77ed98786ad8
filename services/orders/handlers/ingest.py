"""Taking orders in: canonical commands or channel payloads, one at a time or in batches."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.kit import tracing
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.ids import new_id
from services.orders.domain import channels, orchestration
from services.orders.domain.model import Channel, HoldCause, IngestOrder, Order, accept, vouched
from services.orders.domain.orchestration import Stored
from services.orders.domain.timeline import Actor, Entry, entries_for
from services.orders.handlers import risk as risk_handlers
from services.orders.handlers.common import Changes, Policy, save_order
from services.orders.handlers.ports import UnitOfWork

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


async def ingest(
    uow: UnitOfWork,
    policy: Policy,
    items: Sequence[IngestOrder | ChannelPayload],
    actor: Actor,
    traceparents: Sequence[str] = (),
) -> tuple[list[Ingested], Changes]:
    """Store every valid item once, in one transaction; each item gets its own result.

    New orders go in with one statement for the whole batch; the unique constraint on
    (channel, channel order id) answers "does it exist?" inside that statement. Items that already
    exist are then revised one by one, newest version wins. A channel payload that cannot be read
    is kept in quarantine for people to fix.
    """
    if len(items) > MAX_BATCH:
        raise InvalidArgument("items", f"at most {MAX_BATCH} orders per batch")
    now = uow.clock.now()
    results: list[Ingested] = []
    accepted: list[tuple[int, Order, IngestOrder, bytes]] = []
    refused: list[tuple[ChannelPayload, str, InvalidArgument]] = []
    for index, item in enumerate(items):
        try:
            command, raw = _command(item)
            order = accept(command, new_id(), now)
        except InvalidArgument as error:
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
                    item.channel,
                    ref,
                    error.field,
                    error.problem,
                    violations=error.violations,
                )
            )
            if isinstance(item, ChannelPayload):
                refused.append((item, ref, error))
            continue
        results.append(Ingested(index, Outcome.CREATED, order, order.channel, order.channel_order_id))
        accepted.append((index, order, command, raw))
    changes = Changes()
    async with uow:
        for payload, ref, problem in refused:
            channel = payload.channel.value if payload.channel else ""
            await uow.quarantine.add(channel, ref, problem.field, problem.problem, payload.payload, now)
        if policy.hold_for_overdue_tickets and accepted:
            owing = await uow.overdue.customers_among(sorted({order.buyer_id for _, order, _, _ in accepted}))
            for _, order, _, _ in accepted:
                if order.buyer_id in owing:
                    reason = "held for review: the customer has an overdue after-sales ticket"
                    order.hold(reason, now, HoldCause.OVERDUE_TICKET)
        judged = []
        if policy.risk is not None and accepted:
            # only orders not stored yet are judged here (a repeat, a poll's re-read, is not a new order
            # to its phone; a later version is judged as a revision)
            refs = await uow.orders.stored_refs([(o.channel, o.channel_order_id) for _, o, _, _ in accepted])
            fresh = [o for _, o, _, _ in accepted if (o.channel, o.channel_order_id) not in refs]
            judged = await risk_handlers.judge(uow, await policy.risk.current(uow), fresh, now)
        new: list[tuple[Stored, Sequence[Entry], bytes]] = []
        for index, order, _, raw in accepted:
            step = orchestration.next_step(order, orchestration.StockState.NONE)
            stored = Stored(order, step=step.value if step else None, step_due_at=now if step else None)
            if policy.sla is not None:
                stored.sla.terms = policy.sla.terms_for([line.sku for line in order.lines])
                stored.sla.follow(order.status, order.paid_at, order.scanned_out_at)
            if index < len(traceparents):  # the item's own trace (single calls gathered into a batch)
                stored.traceparent = traceparents[index]
            new.append((stored, entries_for(order.events, actor, order.channel.value), raw))
        # the evaluations go in with the orders, in the same statement (only the inserted ones')
        inserted = await uow.orders.add_new(new, now, judged) if new else set()
        for index, order, command, _ in accepted:
            if order.order_id in inserted:
                step = orchestration.next_step(order, orchestration.StockState.NONE)
                if step:
                    changes.due_steps.add(order.order_id)
                    results[index].pending_step = step.value
                continue
            with tracing.attached(traceparents[index] if index < len(traceparents) else ""):
                results[index] = await _revise_existing(uow, policy, index, command, actor, changes)
        await uow.commit()
    return results, changes


def _command(item: IngestOrder | ChannelPayload) -> tuple[IngestOrder, bytes]:
    if isinstance(item, IngestOrder):
        return item, b""
    if item.channel is None:
        raise InvalidArgument("channel", "is required")
    command = vouched(channels.parse(item.channel, item.payload))
    return command, json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False).encode()


async def _revise_existing(
    uow: UnitOfWork, policy: Policy, index: int, command: IngestOrder, actor: Actor, changes: Changes
) -> Ingested:
    """A channel order already stored: a later version revises it, the same or an older one does not."""
    assert command.channel is not None
    stored = await uow.orders.get_by_channel(command.channel, command.channel_order_id, lock=True)
    if stored is None:  # inserted and deleted in between: cannot happen without manual surgery
        raise FailedPrecondition(f"channel order {command.channel_order_id} vanished; retry")
    order = stored.order
    incoming, current = command.channel_modified_at, order.channel_modified_at
    step = stored.step or ""
    if incoming is None or (current is not None and incoming == current):
        return Ingested(
            index, Outcome.UNCHANGED, order, order.channel, order.channel_order_id, pending_step=step
        )
    if current is not None and incoming < current:
        return Ingested(index, Outcome.STALE, order, order.channel, order.channel_order_id, pending_step=step)
    now = uow.clock.now()
    order.revise(command, now)
    judged = []
    if policy.risk is not None and risk_handlers.worth_judging_again(order):
        # a new delivery address is judged again, before the order leaves the warehouse
        judged = await risk_handlers.judge(uow, await policy.risk.current(uow), [order], now, revision=True)
    await save_order(uow, stored, actor, order.channel.value, changes)
    await uow.risk.add_evaluations(judged, now)
    return Ingested(
        index, Outcome.UPDATED, order, order.channel, order.channel_order_id, pending_step=stored.step or ""
    )
