"""What every after-sales use case shares: the service's tunables, who is asking (actor and row scope),
and writing a changed ticket back with its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.aftersales.domain.events import AlertRaised, RefundFailed, TicketEscalated
from services.aftersales.domain.reasons import DEFAULT_POLICY, RefundPolicy
from services.aftersales.domain.retention import DEFAULT_RETENTION, RetentionRule
from services.aftersales.domain.sla import DEFAULT_SLA, SlaPolicy
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.ports import UnitOfWork
from services.kit.errors import NotFound


@dataclass(frozen=True)
class Policy:
    refunds: RefundPolicy = DEFAULT_POLICY
    sla: SlaPolicy = DEFAULT_SLA
    retention: RetentionRule | None = DEFAULT_RETENTION
    # a refund the provider is still PROCESSING is asked after this often (when no notification came)
    query_every: timedelta = timedelta(seconds=60)
    # a refund attempt whose answer is unknown (timeout, SYSTEMERROR) is sent again, identically, after
    retry_delays: tuple[timedelta, ...] = field(
        default=(timedelta(seconds=2), timedelta(seconds=10), timedelta(seconds=60), timedelta(minutes=5))
    )
    lease: timedelta = timedelta(seconds=60)

    def retry_delay(self, attempts: int) -> timedelta:
        return self.retry_delays[min(max(attempts - 1, 0), len(self.retry_delays) - 1)]


@dataclass(frozen=True)
class Scope:
    """How far the caller reaches, from the gateway's assertion: a customer their own tickets, an agent
    their customers' (orders says who), a payment provider its own refunds; staff and services all."""

    customer_id: str = ""
    agent_id: str = ""
    provider: str = ""
    # the agent's customers, filled in by the caller from orders before the use case runs
    customers: frozenset[str] | None = None

    @property
    def unrestricted(self) -> bool:
        return not (self.customer_id or self.agent_id or self.provider)

    def hides_customer(self, customer_id: str) -> bool:
        """Whether this customer's orders and tickets are outside the caller's reach."""
        if self.customer_id and customer_id != self.customer_id:
            return True
        return bool(self.agent_id and customer_id not in (self.customers or frozenset()))

    def hides(self, ticket: Ticket) -> bool:
        if self.hides_customer(ticket.customer_id):
            return True
        payment = ticket.order.payment
        return bool(self.provider and (payment is None or payment.provider != self.provider))


EVERYONE = Scope()


def not_found(ticket_id: str) -> NotFound:
    return NotFound(f"ticket {ticket_id[:64]} not found")


def not_found_order(order_id: str) -> NotFound:
    """An order outside the caller's scope reads like an unknown one."""
    return NotFound(f"order {order_id[:64]} not found")


def emit_recorded(uow: UnitOfWork, ticket: Ticket) -> None:
    """Publish what the ticket's moves recorded, in order, with the alerts some of them call for."""
    for event in ticket.events:
        uow.emit(event)
        match event:
            case RefundFailed():
                uow.emit(
                    AlertRaised(
                        kind="refund_failed",
                        severity="high",
                        message=(
                            f"refund {event.refund_no} of ticket {ticket.ticket_id} "
                            f"(order {ticket.order_id}) {event.status.value}: {event.reason}; "
                            "it is not retried by itself"
                        ),
                        order_id=ticket.order_id,
                        customer_id=ticket.customer_id,
                        roles=("finance", "supervisor"),
                    )
                )
            case TicketEscalated():
                uow.emit(
                    AlertRaised(
                        kind="ticket_escalated",
                        severity="high",
                        message=(
                            f"ticket {ticket.ticket_id} (order {ticket.order_id}) opened "
                            f"{event.opened_at.isoformat()} is still unanswered: escalated to a supervisor"
                        ),
                        order_id=ticket.order_id,
                        customer_id=ticket.customer_id,
                        roles=("supervisor",),
                    )
                )
    ticket.events.clear()


async def save(uow: UnitOfWork, ticket: Ticket, policy: Policy) -> None:
    await uow.tickets.save(ticket, ticket.next_deadline(policy.sla))
    emit_recorded(uow, ticket)
