"""Opening a ticket (auto-approved by the active rule set, or into the review queue), a person's
decision, closing, and reading tickets within the caller's scope.

Every change to an order's tickets runs under the order's lock (`tickets.lock_order`), so what the
order's other tickets hold is read as it is; the per-line claims in the database are the last word on
never refunding more than was paid."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from services.aftersales.domain.approval import RuleSet, default_rule_set, evaluate
from services.aftersales.domain.commands import OpenTicket
from services.aftersales.domain.events import BY_RULES
from services.aftersales.domain.lifecycle import REFUNDS, RETURNS, TicketStatus
from services.aftersales.domain.tickets import Ticket, open_ticket
from services.aftersales.handlers.common import Policy, Scope, emit_recorded, not_found, save
from services.aftersales.handlers.ports import Orders, TicketFilter, UnitOfWork
from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)
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
    _check_request_id(request_id)
    order_id = command.order.order_id
    async with uow:
        await uow.tickets.lock_order(order_id)
        # asked under the order's lock only (one transaction, not a look first and another after): the
        # same request, sent twice at once, may have opened it while we waited
        of_orders, by_request = await uow.tickets.of_orders_and_requests(
            [order_id], [request_id] if request_id else []
        )
        others, first = of_orders[order_id], by_request.get(request_id)
        if first is not None:
            return _same_request(first, command, request_id, scope)
        rules = await _active_rules(uow)
        try:
            ticket = await _open_one(uow, policy, rules, command, request_id, others)
        except AlreadyExists:
            if not request_id:
                raise
            # the same request, sent twice at once, opened its ticket in the other transaction
            first = await uow.tickets.by_request(request_id)
            if first is None:
                raise
            return _same_request(first, command, request_id, scope)
        await uow.commit()
    return ticket


# an opening waiting to be written: the command, its request id, the caller's scope and trace
Opening = tuple[OpenTicket, str, Scope, str]


class TicketOpener:
    """Tickets opened at the same moment are written together: while one transaction writes the
    openings that came first, those that arrive wait and go in the next one (a group commit, at most
    `in_flight` transactions at once; an idle service adds no delay). Each is what `open_new` would
    make of it alone, under its own order's lock and in its caller's trace; should one of a batch fail
    (a refusal, the same request twice), the transaction is rolled back and each is opened alone, so
    only that one meets its error."""

    def __init__(
        self, new_uow: Callable[[], UnitOfWork], orders: Orders, policy: Policy, in_flight: int = 2
    ) -> None:
        self.new_uow = new_uow
        self.orders = orders
        self.policy = policy
        self._batcher: Batcher[Opening, Ticket | None] = Batcher(
            self._together, linger=0, max_batch=64, in_flight=in_flight
        )

    @property
    def batches(self) -> int:
        """How many transactions took openings together (for the tests and the benchmarks)."""
        return self._batcher.batches

    async def open(self, command: OpenTicket, request_id: str, scope: Scope) -> Ticket:
        _check_request_id(request_id)
        opened = await self._batcher.submit((command, request_id, scope, tracing.current_traceparent()))
        if opened is not None:
            return opened
        return await open_new(self.new_uow(), self.orders, self.policy, command, request_id, scope)

    async def _together(self, items: list[Opening]) -> list[Ticket | None]:
        """The group's tickets, or None for each (each is then opened alone by its caller, outside
        the batcher, as the other desks do)."""
        order_ids = [command.order.order_id for command, *_ in items]
        requests = [request_id for _, request_id, _, _ in items if request_id]
        if len(items) > 1 and len(set(order_ids)) == len(order_ids) and len(set(requests)) == len(requests):
            try:
                return list(await open_many(self.new_uow(), self.policy, items))
            except Exception as error:
                log.info("%d openings are opened one by one: %r", len(items), error)
        return [None] * len(items)


async def open_many(uow: UnitOfWork, policy: Policy, items: Sequence[Opening]) -> list[Ticket]:
    """Open tickets of different orders in one transaction, each as `open_new` would (the orders
    locked in one order, so two such transactions queue instead of deadlocking); any refusal raises
    and nothing is written."""
    order_ids = [command.order.order_id for command, *_ in items]
    async with uow:
        await uow.tickets.lock_orders(order_ids)
        of_orders, by_request = await uow.tickets.of_orders_and_requests(
            order_ids, [request_id for _, request_id, _, _ in items if request_id]
        )
        rules = await _active_rules(uow)
        tickets: list[Ticket] = []
        for command, request_id, scope, traceparent in items:
            with tracing.attached(traceparent):
                first = by_request.get(request_id) if request_id else None
                if first is not None:
                    tickets.append(_same_request(first, command, request_id, scope))
                    continue
                others = of_orders.get(command.order.order_id, [])
                tickets.append(await _open_one(uow, policy, rules, command, request_id, others))
        await uow.commit()
    return tickets


def _check_request_id(request_id: str) -> None:
    if len(request_id) > 128:
        raise InvalidArgument("request_id", "at most 128 characters")


async def _active_rules(uow: UnitOfWork) -> RuleSet:
    active = await uow.rule_sets.active()
    return active.rule_set() if active is not None else default_rule_set()


async def _open_one(
    uow: UnitOfWork,
    policy: Policy,
    rules: RuleSet,
    command: OpenTicket,
    request_id: str,
    others: list[Ticket],
) -> Ticket:
    """The ticket opened and decided, its refund claimed and queued when approved, and written with its
    events (the order locked and its tickets read by the caller). AlreadyExists: `request_id` opened
    one meanwhile."""
    now = uow.clock.now()
    ticket = open_ticket(command, now, others=others, policy=policy.refunds, retention=policy.retention)
    if ticket.decide(evaluate(rules, ticket.facts(), now), now):
        await after_approval(uow, ticket, others)
    await uow.tickets.add(ticket, request_id, ticket.next_deadline(policy.sla))
    emit_recorded(uow, ticket)
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
