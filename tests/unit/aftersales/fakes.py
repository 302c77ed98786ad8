"""After-sales' unit of work in memory, implementing `services.aftersales.handlers.ports` as the store
does (rolled back unless committed; events published only on commit; claims refused past what was
paid), with scripted orders, inventory and payment providers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.aftersales.domain.approval import PastTicket, RuleSetStatus, RuleSetVersion
from services.aftersales.domain.lifecycle import OPEN_STATUSES
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.tickets import Ticket
from services.aftersales.domain.vouchers import Voucher
from services.aftersales.handlers.ports import (
    ConcurrentChange,
    ProviderAnswer,
    RefundJob,
    RestockJob,
    TicketFilter,
)
from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition, NotFound, Unavailable
from tests.unit.fake_uow import SnapshotUnitOfWork

BUCKETS = ("goods_minor", "promotion_minor", "coupon_minor", "points_minor", "shipping_minor")


@dataclass
class State:
    tickets: dict[str, tuple[Ticket, str, datetime | None, int]] = field(default_factory=dict)
    # (order, line, bucket) → [paid, claimed]
    claims: dict[tuple[str, int, str], list[int]] = field(default_factory=dict)
    refunds: dict[str, dict[str, object]] = field(default_factory=dict)
    restocks: dict[str, dict[str, object]] = field(default_factory=dict)
    rule_sets: dict[int, RuleSetVersion] = field(default_factory=dict)
    published: list[object] = field(default_factory=list)


def _copy(ticket: Ticket) -> Ticket:
    found = copy.deepcopy(ticket)
    found.events = []
    return found


class FakeTickets:
    def __init__(self, state: State) -> None:
        self.state = state

    async def lock_order(self, order_id: str) -> None:
        return None

    async def of_order(self, order_id: str) -> list[Ticket]:
        return [_copy(t) for t, *_ in self.state.tickets.values() if t.order_id == order_id]

    async def lock_orders(self, order_ids: list[str]) -> None:
        return None

    async def of_orders_and_requests(
        self, order_ids: list[str], request_ids: list[str]
    ) -> tuple[dict[str, list[Ticket]], dict[str, Ticket]]:
        found = {request_id: await self.by_request(request_id) for request_id in request_ids}
        return (
            {order_id: await self.of_order(order_id) for order_id in order_ids},
            {request_id: ticket for request_id, ticket in found.items() if ticket is not None},
        )

    async def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        found = self.state.tickets.get(ticket_id)
        return _copy(found[0]) if found else None

    async def get_many(self, ticket_ids: list[str], *, lock: bool = False) -> dict[str, Ticket]:
        found = {ticket_id: await self.get(ticket_id, lock=lock) for ticket_id in ticket_ids}
        return {ticket_id: ticket for ticket_id, ticket in found.items() if ticket is not None}

    async def by_request(self, request_id: str) -> Ticket | None:
        return next((_copy(t) for t, r, *_ in self.state.tickets.values() if r == request_id), None)

    async def by_replacement(self, order_id: str, *, lock: bool = False) -> Ticket | None:
        return next(
            (
                _copy(t)
                for t, *_ in self.state.tickets.values()
                if order_id and t.replacement_shipment_id == order_id
            ),
            None,
        )

    async def by_refund_no(self, refund_no: str, *, lock: bool = False) -> Ticket | None:
        return next((_copy(t) for t, *_ in self.state.tickets.values() if t.refund_no == refund_no), None)

    async def add(self, ticket: Ticket, request_id: str, next_deadline: datetime | None) -> None:
        for other, *_ in self.state.tickets.values():
            if other.order_id == ticket.order_id and other.reason is ticket.reason and other.is_open:
                raise FailedPrecondition(
                    f"reason: ticket {other.ticket_id} is open for {ticket.reason.value}"
                )
        self.state.tickets[ticket.ticket_id] = (_copy(ticket), request_id, next_deadline, 1)

    async def save(self, ticket: Ticket, next_deadline: datetime | None) -> None:
        _, request_id, _, version = self.state.tickets[ticket.ticket_id]
        self.state.tickets[ticket.ticket_id] = (_copy(ticket), request_id, next_deadline, version + 1)

    async def due(self, now: datetime, limit: int) -> list[Ticket]:
        due = [
            t for t, _, deadline, _ in self.state.tickets.values() if deadline is not None and deadline <= now
        ]
        return [_copy(t) for t in due[:limit]]

    async def page(
        self, where: TicketFilter, now: datetime, size: int, token: str
    ) -> tuple[list[Ticket], str]:
        found = [
            t
            for t, *_ in self.state.tickets.values()
            if (not where.order_id or t.order_id == where.order_id)
            and (not where.customer_id or t.customer_id == where.customer_id)
            and (where.customers is None or t.customer_id in where.customers)
            and (not where.status or t.status.value == where.status)
            and (not where.overdue_only or t.flagged_at is not None)
        ]
        return [_copy(t) for t in sorted(found, key=lambda t: t.opened_at, reverse=True)[:size]], ""

    async def decided(self, limit: int) -> list[PastTicket]:
        return [
            PastTicket(t.facts(), t.answered_at or t.opened_at)
            for t, *_ in self.state.tickets.values()
            if t.decision is not None
        ][:limit]


class FakeClaims:
    def __init__(self, state: State) -> None:
        self.state = state

    async def claim(self, order: OrderSnapshot, voucher: Voucher) -> None:
        for line in voucher.lines:
            paid = order.lines[line.line_index]
            for bucket, amount, limit in [
                ("units", line.quantity, paid.quantity),
                *((name, getattr(line.amounts, name), getattr(paid.amounts, name)) for name in BUCKETS),
            ]:
                row = self.state.claims.setdefault((order.order_id, line.line_index, bucket), [limit, 0])
                if row[1] + amount > row[0]:
                    raise FailedPrecondition(f"lines[{line.line_index}]: {bucket} would exceed what was paid")
                row[1] += amount

    async def release(self, order_id: str, voucher: Voucher) -> None:
        for line in voucher.lines:
            self.state.claims[(order_id, line.line_index, "units")][1] -= line.quantity
            for name in BUCKETS:
                self.state.claims[(order_id, line.line_index, name)][1] -= getattr(line.amounts, name)


class FakeRefunds:
    def __init__(self, state: State, clock: FixedClock) -> None:
        self.state = state
        self.clock = clock

    async def add(self, ticket: Ticket, approved_by: str, now: datetime) -> None:
        assert ticket.voucher is not None and ticket.order.payment is not None
        payment = ticket.order.payment
        self.state.refunds[ticket.refund_no] = {
            "job": RefundJob(
                ticket.ticket_id,
                ticket.order_id,
                payment.provider,
                payment.transaction_id,
                payment.merchant_order_no,
                ticket.refund_no,
                ticket.order.currency,
                ticket.voucher.cash_minor,
                payment.amount_minor,
                "PENDING",
                0,
            ),
            "approved_by": approved_by,
            "next": now,
            "provider_refund_id": "",
        }

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RefundJob]:
        jobs = []
        for row in self.state.refunds.values():
            if row["next"] is not None and row["next"] <= now:  # type: ignore[operator]
                job = replace(row["job"], attempts=row["job"].attempts + 1)  # type: ignore[attr-defined]
                row["job"], row["next"] = job, lease_until
                jobs.append(job)
        return jobs[:limit]

    async def answered(
        self,
        refund_no: str,
        status: str,
        provider_refund_id: str,
        next_attempt_at: datetime | None,
        error: str,
    ) -> None:
        row = self.state.refunds[refund_no]
        row["job"] = replace(row["job"], status=status)  # type: ignore[type-var]
        row["next"], row["error"] = next_attempt_at, error
        row["provider_refund_id"] = provider_refund_id or row["provider_refund_id"]

    async def settled(self, refund_no: str, status: str, provider_refund_id: str, at: datetime) -> None:
        row = self.state.refunds[refund_no]
        row["job"] = replace(row["job"], status=status)  # type: ignore[type-var]
        row["next"], row["settled"] = None, at

    async def ledger(
        self, since: datetime | None, until: datetime | None, size: int, token: str
    ) -> tuple[list[dict[str, object]], str]:
        return [dict(row) for row in self.state.refunds.values()][:size], ""


class FakeRestocks:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(self, job: RestockJob, now: datetime) -> None:
        self.state.restocks.setdefault(job.return_id, {"job": job, "next": now, "done": None})

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RestockJob]:
        due = [r for r in self.state.restocks.values() if r["next"] is not None and r["next"] <= now]  # type: ignore[operator]
        for row in due:
            row["next"] = lease_until
        return [row["job"] for row in due][:limit]  # type: ignore[misc]

    async def done(self, return_id: str, now: datetime) -> None:
        self.state.restocks[return_id].update(done=now, next=None)

    async def retry(self, return_id: str, at: datetime, error: str) -> None:
        self.state.restocks[return_id].update(next=at, error=error)


class FakeRuleSets:
    def __init__(self, state: State) -> None:
        self.state = state

    async def active(self) -> RuleSetVersion | None:
        return next((v for v in self.state.rule_sets.values() if v.status is RuleSetStatus.ACTIVE), None)

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None:
        return self.state.rule_sets.get(version)

    async def all(self) -> list[RuleSetVersion]:
        return sorted(self.state.rule_sets.values(), key=lambda v: v.version)

    async def next_version(self) -> int:
        return max(self.state.rule_sets, default=0) + 1

    async def save(self, version: RuleSetVersion, created_by: str = "") -> None:
        self.state.rule_sets[version.version] = version


class FakeUnitOfWork(SnapshotUnitOfWork[State]):
    def __init__(self, state: State, clock: FixedClock) -> None:
        self.clock = clock
        super().__init__(state)

    def bind(self, state: State) -> None:
        self.tickets = FakeTickets(state)
        self.claims = FakeClaims(state)
        self.refunds = FakeRefunds(state, self.clock)
        self.restocks = FakeRestocks(state)
        self.rule_sets = FakeRuleSets(state)


class FakeOrders:
    def __init__(self, *orders: OrderSnapshot, agents: dict[str, frozenset[str]] | None = None) -> None:
        self.orders = {order.order_id: order for order in orders}
        self.agents = agents or {}
        self.placed: dict[str, RestockJob] = {}

    async def snapshot(self, order_id: str) -> OrderSnapshot:
        if order_id not in self.orders:
            raise NotFound(f"order {order_id} not found")
        return self.orders[order_id]

    async def agent_customers(self, agent_id: str) -> frozenset[str]:
        return self.agents.get(agent_id, frozenset())

    async def place_replacement(self, job: RestockJob) -> str:
        self.placed.setdefault(job.return_id, job)
        return f"order-{job.return_id}"


class ScriptedProviders:
    """Answers each refund with the next scripted answer (then SUCCESS); records every call."""

    def __init__(self, *answers: ProviderAnswer, queries: Sequence[ProviderAnswer] = ()) -> None:
        self.answers = list(answers)
        self.queries = list(queries)
        self.sent: list[RefundJob] = []
        self.asked: list[RefundJob] = []

    async def refund(self, job: RefundJob, reason: str) -> ProviderAnswer:
        self.sent.append(job)
        return self.answers.pop(0) if self.answers else ProviderAnswer("SUCCESS", f"50{len(self.sent)}")

    async def query(self, job: RefundJob) -> ProviderAnswer:
        self.asked.append(job)
        return self.queries.pop(0) if self.queries else ProviderAnswer("SUCCESS", "50q")


class FakeInventory:
    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.restocked: list[RestockJob] = []

    async def restock(self, job: RestockJob) -> None:
        if self.down:
            self.down -= 1
            raise Unavailable("inventory is unavailable")
        self.restocked.append(job)


__all__ = ["OPEN_STATUSES", "ConcurrentChange"]
