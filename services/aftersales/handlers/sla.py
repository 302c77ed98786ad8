"""The response-time clock: tickets whose next deadline passed are flagged overdue (48 h by default),
then escalated to a supervisor with an alert (72 h). Deadline-indexed: each ticket carries its next
deadline and the sweep reads only those due, never every open ticket."""

from __future__ import annotations

from services.aftersales.handlers.common import Policy, save
from services.aftersales.handlers.ports import UnitOfWork


async def sweep(uow: UnitOfWork, policy: Policy, limit: int = 200) -> int:
    """Flag and escalate what is due now; how many tickets moved. Idempotent: a ticket is flagged and
    escalated once each."""
    moved = 0
    async with uow:
        now = uow.clock.now()
        for ticket in await uow.tickets.due(now, limit):
            if ticket.apply_sla(now, policy.sla):
                moved += 1
            await save(uow, ticket, policy)  # its next deadline moves on (or clears) either way
        await uow.commit()
    return moved
