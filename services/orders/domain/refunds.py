"""What after-sales tells an order about its tickets, and what the order makes of it (DOMAIN.md §1, §6).

After-sales owns tickets, vouchers and refunds; the order keeps only what it must show: every step of
its tickets on its timeline, whether a refund is in progress (then the order says so, never plainly
"shipped"), and what was refunded, per line in units and in total, which decides PARTIALLY_REFUNDED or
REFUNDED. Each report is applied once per ticket and kind, so a repeated or late event changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.orders.domain.lifecycle import OrderStatus


class TicketStep(StrEnum):
    OPENED = "opened"
    APPROVED = "approved"
    REJECTED = "rejected"
    FLAGGED = "flagged"  # past its response limit
    ESCALATED = "escalated"  # past its escalation limit: a supervisor has it
    RETURN_RECEIVED = "return_received"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"
    CLOSED = "closed"


ANSWERED = frozenset({TicketStep.APPROVED, TicketStep.REJECTED, TicketStep.CLOSED})


@dataclass(frozen=True)
class TicketReport:
    """One after-sales event about one of the order's tickets."""

    step: TicketStep
    ticket_id: str
    order_id: str
    detail: str = ""
    at: datetime | None = None
    # a refund's cash and points (REFUNDED), and the units it covered per line index
    cash_minor: int = 0
    points_minor: int = 0
    units: tuple[tuple[int, int], ...] = ()
    # the ticket's customer, and whether the ticket went past its response limit (FLAGGED)
    customer_id: str = ""
    overdue: bool = False

    @property
    def answered(self) -> bool:
        """The ticket was decided or ended: it is no longer overdue."""
        return self.step in ANSWERED


@dataclass(frozen=True)
class Refunds:
    """An order's refunds as the order knows them."""

    cash_minor: int = 0
    points_minor: int = 0
    # units refunded per line index
    units: tuple[tuple[int, int], ...] = ()
    # tickets whose refund was sent to the provider and is not settled yet
    in_progress: frozenset[str] = frozenset()
    # tickets whose refund settled (applied once each)
    settled: frozenset[str] = frozenset()
    # (ticket, step) already on the timeline
    noted: frozenset[tuple[str, str]] = field(default=frozenset())

    def units_of(self, line_index: int) -> int:
        return dict(self.units).get(line_index, 0)

    def fully_refunded(self, quantities: Sequence[int]) -> bool:
        return all(self.units_of(index) >= quantity for index, quantity in enumerate(quantities))


# an order already on its way or delivered moves to the refund statuses; one still in the warehouse
# keeps its status (a partial refund does not stop the rest shipping), a full refund of a paid order
# before it ships ends it as REFUNDED where the lifecycle allows
PARTIAL_FROM = frozenset(
    {
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
        OrderStatus.PARTIALLY_REFUNDED,
    }
)


def describe(report: TicketReport) -> str:
    return f"ticket {report.ticket_id}: {report.detail}" if report.detail else f"ticket {report.ticket_id}"


def apply(refunds: Refunds, report: TicketReport) -> tuple[Refunds, bool]:
    """The refunds after the report, and whether the report is news (a timeline entry)."""
    key = (report.ticket_id, report.step.value)
    news = key not in refunds.noted
    after = replace(refunds, noted=refunds.noted | {key})
    match report.step:
        case TicketStep.REFUND_REQUESTED if report.ticket_id not in refunds.settled:
            after = replace(after, in_progress=after.in_progress | {report.ticket_id})
        case TicketStep.REFUNDED if report.ticket_id not in refunds.settled:
            units = dict(after.units)
            for index, quantity in report.units:
                units[index] = units.get(index, 0) + max(quantity, 0)
            after = replace(
                after,
                cash_minor=after.cash_minor + max(report.cash_minor, 0),
                points_minor=after.points_minor + max(report.points_minor, 0),
                units=tuple(sorted(units.items())),
                in_progress=after.in_progress - {report.ticket_id},
                settled=after.settled | {report.ticket_id},
            )
        case TicketStep.REFUND_FAILED | TicketStep.REJECTED | TicketStep.CLOSED:
            after = replace(after, in_progress=after.in_progress - {report.ticket_id})
    return after, news


def status_after_refund(
    status: OrderStatus, refunds: Refunds, quantities: Sequence[int]
) -> OrderStatus | None:
    """The status a settled refund moves the order to, or None to keep it."""
    if refunds.fully_refunded(quantities):
        return OrderStatus.REFUNDED if status in PARTIAL_FROM or status in _FULL_FROM else None
    return OrderStatus.PARTIALLY_REFUNDED if status in PARTIAL_FROM else None


_FULL_FROM = frozenset({OrderStatus.PAID, OrderStatus.ALLOCATED})
