"""What after-sales' events do to orders: every step of a ticket on the order's timeline, a refund in
progress shown on the order, a settled refund moving it to PARTIALLY_REFUNDED or REFUNDED. Each runs in
the consumer's inbox transaction (a joined unit of work), so an event is handled once."""

from __future__ import annotations

from collections.abc import Sequence

from services.orders.domain.orchestration import Stored
from services.orders.domain.refunds import TicketReport
from services.orders.domain.timeline import Actor
from services.orders.handlers.common import Changes, Policy, apply_per_order, save_order
from services.orders.handlers.ports import UnitOfWork

AFTERSALES = Actor.service("aftersales")


async def ticket_reported(uow: UnitOfWork, policy: Policy, report: TicketReport) -> Changes:
    """A ticket of the order moved: the order records it (a repeated or late report writes nothing); an
    order this service does not hold is not ours to follow."""
    return await tickets_reported(uow, policy, [report], [""])


async def tickets_reported(
    uow: UnitOfWork, policy: Policy, reports: Sequence[TicketReport], traceparents: Sequence[str]
) -> Changes:
    """Ticket steps in the order after-sales published them (`traceparents[i]`: the trace of
    `reports[i]`, empty for the current one): the overdue read model follows each; each order is read
    once and written once per run of its steps from one trace (`apply_per_order`)."""
    changes = Changes()
    answered: list[str] = []  # cleared together, before a flag that could follow one of them
    for report in reports:
        if report.overdue and report.customer_id:
            if report.ticket_id in answered:
                await uow.overdue.clear(answered)
                answered = []
            await uow.overdue.flag(report.customer_id, report.ticket_id, uow.clock.now())
        elif report.answered:
            answered.append(report.ticket_id)
    await uow.overdue.clear(answered)

    async def apply(stored: Stored, report: TicketReport) -> bool:
        return stored.order.report_ticket(report, uow.clock.now())

    async def write(stored: Stored) -> None:
        await save_order(uow, stored, AFTERSALES, "aftersales", changes)

    await apply_per_order(uow, reports, traceparents, lambda report: report.order_id, apply, write)
    return changes
