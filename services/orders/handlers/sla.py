"""SLA timers: the job that acts on the timers due (told at amber, escalated at red), and setting who
owns a queue or an order."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.errors import InvalidArgument
from services.orders.domain import sla
from services.orders.domain.timeline import Actor, Entry
from services.orders.handlers.common import Changes, locked_order, save_order
from services.orders.handlers.ports import UnitOfWork

SLA_BATCH = 500
MAX_OWNER = 128


@dataclass(frozen=True)
class Reached:
    order_id: str
    level: sla.Level
    notify: str


@dataclass(frozen=True)
class SlaRun:
    due: int  # timers read (all that were due, up to the limit)
    reached: list[Reached]  # those that reached a new level


async def check_sla(uow: UnitOfWork, limit: int = SLA_BATCH) -> tuple[SlaRun, Changes]:
    """Act on the SLA timers due now (read by their index: only those, never every open order): a
    timer that turned amber tells its owner, one that turned red escalates to the backup owner with an
    alert and `oms.orders.sla_breached`; each order's next due moment is set for the next level."""
    changes = Changes()
    actor = Actor.service("orders")
    reached: list[Reached] = []
    async with uow:
        now = uow.clock.now()
        due = await uow.orders.sla_due(now, limit)
        owners = await uow.sla.owners([stored.sla.queue() for stored in due])
        for stored in due:
            state = stored.sla
            escalation = sla.escalate(state, now, owners.get(state.queue(), sla.Owners("", "")))
            order = stored.order
            if escalation is not None:
                order.events.extend(sla.reached_events(order.order_id, state, escalation))
                reached.append(Reached(order.order_id, escalation.level, escalation.notify))
            await save_order(uow, stored, actor, "orders", changes)
        await uow.commit()
    return SlaRun(len(due), reached), changes


def _owner(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > MAX_OWNER or any(ord(char) < 32 for char in value):
        raise InvalidArgument(field, f"must be a role or a person's name of at most {MAX_OWNER} characters")
    return value


def check_queue(queue: str, book: sla.SlaBook | None) -> str:
    stage, _, category = queue.strip().partition("/")
    if stage not in sla.Stage._value2member_map_ or (book is not None and category not in book.categories):
        known = sorted(f"{s.value}/{c}" for s in sla.Stage for c in (book.categories if book else ()))
        raise InvalidArgument(
            "owners.queue", f"must be a queue such as {', '.join(known) or 'fulfilment/normal'}"
        )
    return f"{stage}/{category}"


async def set_queue_owners(
    uow: UnitOfWork, book: sla.SlaBook | None, queue: str, owner: str, backup: str, by: str
) -> tuple[str, sla.Owners]:
    queue = check_queue(queue, book)
    owners = sla.Owners(_owner(owner, "owners.owner"), _owner(backup, "owners.backup"))
    if not owners.owner:
        raise InvalidArgument("owners.owner", "is required")
    async with uow:
        await uow.sla.set_owners(queue, owners, by, uow.clock.now())
        await uow.commit()
    return queue, owners


async def queue_owners(uow: UnitOfWork) -> dict[str, sla.Owners]:
    async with uow:
        return await uow.sla.all_owners()


async def set_order_owners(
    uow: UnitOfWork, order_id: str, owner: str, backup: str, actor: Actor
) -> tuple[sla.SlaState, str]:
    """Give one order its own owners (empty: its queue's again); recorded on its timeline."""
    owner, backup = _owner(owner, "owner"), _owner(backup, "backup")
    changes = Changes()
    async with uow:
        stored = await locked_order(uow, order_id)
        stored.sla.owner, stored.sla.backup = owner, backup
        text = f"SLA owner {owner or '(the queue’s)'}, backup {backup or '(the queue’s)'}"
        await save_order(uow, stored, actor, "orders", changes, [Entry("sla_owners", actor, "orders", text)])
        await uow.commit()
    return stored.sla, stored.order.status.value
