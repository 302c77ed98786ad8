"""What after-sales' events do to orders: every step of a ticket on the order's timeline, a refund in
progress shown on the order, a settled refund moving it to PARTIALLY_REFUNDED or REFUNDED. Each runs in
the consumer's inbox transaction (a joined unit of work), so an event is handled once."""

from __future__ import annotations

from services.kit.ids import is_id
from services.orders.domain.refunds import TicketReport
from services.orders.domain.timeline import Actor
from services.orders.handlers.common import Changes, Policy, save_order
from services.orders.handlers.ports import UnitOfWork

AFTERSALES = Actor.service("aftersales")


async def ticket_reported(uow: UnitOfWork, policy: Policy, report: TicketReport) -> Changes:
    """A ticket of the order moved: the order records it (a repeated or late report writes nothing); an
    order this service does not hold is not ours to follow."""
    changes = Changes()
    if report.overdue and report.customer_id:
        await uow.overdue.flag(report.customer_id, report.ticket_id, uow.clock.now())
    elif report.answered:
        await uow.overdue.clear(report.ticket_id)
    if not is_id(report.order_id):
        return changes
    stored = await uow.orders.get(report.order_id, lock=True)
    if stored is None or not stored.order.report_ticket(report, uow.clock.now()):
        return changes
    await save_order(uow, stored, AFTERSALES, "aftersales", changes)
    return changes
