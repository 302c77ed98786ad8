"""Orders nothing else would move: driven again, planned again, or alerted about."""

from __future__ import annotations

from dataclasses import dataclass

from services.orders.domain.model import ServiceAlert
from services.orders.domain.timeline import Actor, Entry
from services.orders.handlers.common import Changes, Policy, save_order
from services.orders.handlers.ports import UnitOfWork

SWEEP_BATCH = 500


@dataclass(frozen=True)
class Sweep:
    redriven: list[str]
    replanned: list[str]
    not_taken: int  # steps due for longer than allowed that no worker took


async def sweep_stuck(uow: UnitOfWork, policy: Policy, limit: int = SWEEP_BATCH) -> tuple[Sweep, Changes]:
    """Orders that have not moved for longer than their state allows: an automatic state nobody owns
    gets its step again, a hold for stock is planned again, and due steps no worker takes raise an
    alert saying so (the process manager is not running, or is far behind)."""
    changes = Changes()
    actor = Actor.service("orders")
    async with uow:
        now = uow.clock.now()
        before = now - policy.stuck_after
        redriven, replanned = [], []
        for stored in await uow.orders.unowned(before, limit):
            note = Entry("redriven", actor, "orders", "sweep: no step owned this order; driving it again")
            await save_order(uow, stored, actor, "orders", changes, [note], step_done=True)
            redriven.append(stored.order.order_id)
        for stored in await uow.orders.held_for_stock_since(before, limit):
            stored.order.release("sweep: still held for stock; planning again", now)
            await save_order(uow, stored, actor, "orders", changes)
            replanned.append(stored.order.order_id)
        not_taken = await uow.orders.count_not_taken(before)
        if not_taken:
            uow.emit(
                ServiceAlert(
                    "order_steps_not_taken",
                    "high",
                    f"{not_taken} order steps have been due for over {policy.stuck_after} and no worker took "
                    "them: is an orders process manager running (PROCESS_MANAGER_CONCURRENCY > 0)?",
                )
            )
        await uow.commit()
    return Sweep(redriven, replanned, not_taken), changes
