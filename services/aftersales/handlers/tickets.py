"""Opening a ticket (auto-approved by the active rule set, or into the review queue), a person's
decision, closing, and reading tickets within the caller's scope.

Every change to an order's tickets runs under the order's lock (`tickets.lock_order`), so what the
order's other tickets hold is read as it is; the per-line claims in the database are the last word on
never refunding more than was paid."""

from __future__ import annotations

from dataclasses import replace

from services.aftersales.domain.approval import default_rule_set, evaluate
from services.aftersales.domain.commands import OpenTicket
from services.aftersales.domain.events import BY_RULES
from services.aftersales.domain.lifecycle import REFUNDS, RETURNS, TicketStatus
from services.aftersales.domain.tickets import Ticket, open_ticket
from services.aftersales.handlers.common import Policy, Scope, emit_recorded, not_found, save
from services.aftersales.handlers.ports import Orders, TicketFilter, UnitOfWork
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

MAX_PAGE = 200
S = TicketStatus


def approved_by(ticket: Ticket) -> str:
    if ticket.answered_by == BY_RULES and ticket.decision is not None:
        return f"rules v{ticket.decision.rule_set_version} ({ticket.decision.rule})"
    return ticket.answered_by or "unknown"


async def request_refund(uow: UnitOfWork, ticket: Ticket, others: list[Ticket]) -> None:
    """Fix the ticket's voucher, claim it against what the order's lines were paid (the database
    refuses more), and queue the refund at the order's provider."""
    now = uow.clock.now()
    if not ticket.request_refund(now, others=others):
        return
    assert ticket.voucher is not None
    await uow.claims.claim(ticket.order, ticket.voucher)
    await uow.refunds.add(ticket, approved_by(ticket), now)


async def after_approval(uow: UnitOfWork, ticket: Ticket, others: list[Ticket]) -> None:
    """A refund-only ticket asks for its money at once; returns wait for the goods."""
    if ticket.status is S.APPROVED and ticket.kind in REFUNDS and ticket.kind not in RETURNS:
        await request_refund(uow, ticket, others)


async def open_new(
    uow: UnitOfWork,
    orders: Orders,
    policy: Policy,
    command: OpenTicket,
    request_id: str,
    scope: Scope,
) -> Ticket:
    """Open the ticket (a repeated request id answers the first one's), decide it by the active rules
    and, approved, start its refund or wait for its return."""
    if len(request_id) > 128:
        raise InvalidArgument("request_id", "at most 128 characters")
    async with uow:
        now = uow.clock.now()
        await uow.tickets.lock_order(command.order.order_id)
        # asked under the order's lock only (one transaction, not a look first and another after): the
        # same request, sent twice at once, may have opened it while we waited
        if request_id:
            first = await uow.tickets.by_request(request_id)
            if first is not None:
                return _same_request(first, command, request_id, scope)
        others = await uow.tickets.of_order(command.order.order_id)
        ticket = open_ticket(command, now, others=others, policy=policy.refunds, retention=policy.retention)
        active = await uow.rule_sets.active()
        rules = active.rule_set() if active is not None else default_rule_set()
        if ticket.decide(evaluate(rules, ticket.facts(), now), now):
            await after_approval(uow, ticket, others)
        try:
            await uow.tickets.add(ticket, request_id, ticket.next_deadline(policy.sla))
        except AlreadyExists:
            if not request_id:
                raise
            # the same request, sent twice at once, opened its ticket in the other transaction
            first = await uow.tickets.by_request(request_id)
            if first is None:
                raise
            return _same_request(first, command, request_id, scope)
        emit_recorded(uow, ticket)
        await uow.commit()
    return ticket


def _same_request(first: Ticket, command: OpenTicket, request_id: str, scope: Scope) -> Ticket:
    """A repeated request id answers the ticket it opened, if it was for the same order and caller."""
    if first.order_id != command.order.order_id or scope.hides(first):
        raise FailedPrecondition(f"request_id {request_id[:64]} was used for another ticket")
    return first


async def _visible(uow: UnitOfWork, ticket_id: str, scope: Scope, *, lock: bool = False) -> Ticket:
    if not ticket_id.strip():
        raise InvalidArgument("ticket_id", "is required")
    ticket = await uow.tickets.get(ticket_id.strip(), lock=lock)
    if ticket is None or scope.hides(ticket):
        raise not_found(ticket_id)
    return ticket


async def decide(
    uow: UnitOfWork, policy: Policy, ticket_id: str, approve: bool, by: str, note: str, scope: Scope
) -> Ticket:
    """A person (cs_agent, supervisor) approves or rejects a ticket waiting for review."""
    if not approve and not note.strip():
        raise InvalidArgument("reason", "is required: the customer is told why")
    async with uow:
        found = await _visible(uow, ticket_id, scope)
        await uow.tickets.lock_order(found.order_id)
        others = await uow.tickets.of_order(found.order_id)
        ticket = next(t for t in others if t.ticket_id == found.ticket_id)
        now = uow.clock.now()
        if approve:
            ticket.approve(by, now)
            await after_approval(uow, ticket, others)
        else:
            ticket.reject(by, note.strip(), now)
        await save(uow, ticket, policy)
        await uow.commit()
    return ticket


async def retry_refund(uow: UnitOfWork, policy: Policy, ticket_id: str, by: str, scope: Scope) -> Ticket:
    """A person asks again for a refund the provider CLOSED: a new attempt under a new number."""
    async with uow:
        found = await _visible(uow, ticket_id, scope)
        await uow.tickets.lock_order(found.order_id)
        ticket = await uow.tickets.get(found.ticket_id, lock=True)
        assert ticket is not None
        now = uow.clock.now()
        ticket.retry_refund(now)
        assert ticket.voucher is not None
        await uow.claims.claim(ticket.order, ticket.voucher)
        await uow.refunds.add(ticket, by, now)
        await save(uow, ticket, policy)
        await uow.commit()
    return ticket


async def add_note(
    uow: UnitOfWork, policy: Policy, ticket_id: str, by: str, text: str, scope: Scope
) -> Ticket:
    """A note on the ticket's log by anyone who may see the ticket (its customer, their agent, a
    supervisor, finance); it changes nothing else."""
    async with uow:
        found = await _visible(uow, ticket_id, scope)
        await uow.tickets.lock_order(found.order_id)
        ticket = await uow.tickets.get(found.ticket_id, lock=True)
        assert ticket is not None
        ticket.add_note(by, text, uow.clock.now())
        await save(uow, ticket, policy)
        await uow.commit()
    return ticket


async def get_ticket(uow: UnitOfWork, ticket_id: str, scope: Scope) -> Ticket:
    async with uow:
        return await _visible(uow, ticket_id, scope)


async def list_tickets(
    uow: UnitOfWork, where: TicketFilter, scope: Scope, size: int, token: str
) -> tuple[list[Ticket], str]:
    if size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if where.status and where.status not in S.__members__:
        raise InvalidArgument("status", f"unknown ticket status {where.status[:32]!r}")
    if scope.customer_id:
        if where.customer_id and where.customer_id != scope.customer_id:
            return [], ""
        where = replace(where, customer_id=scope.customer_id)
    if scope.agent_id:
        where = replace(where, customers=scope.customers or frozenset())
    async with uow:
        try:
            tickets, next_token = await uow.tickets.page(
                where, uow.clock.now(), min(size or 50, MAX_PAGE), token
            )
        except ValueError:
            raise InvalidArgument("page_token", "is not a token this service gave") from None
    return [t for t in tickets if not scope.hides(t)], next_token
