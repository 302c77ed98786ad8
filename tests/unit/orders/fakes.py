"""Orders' unit of work in memory: the protocols of services.orders.handlers.ports, no IO.

Every unit of work made by one `FakeOrders` shares its state; one that is not committed leaves the
state as it found it (like a transaction). What the real store writes to the outbox is kept here as
the domain events themselves (`published`: the order id, or "" for an event of no order, and the event).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.kit.clock import FixedClock
from services.kit.sealing import KeyRing
from services.orders import handlers, status_rules
from services.orders.domain import reconciliation as rec
from services.orders.domain import sla
from services.orders.domain.anchor import Observation
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Channel, HoldCause, Order
from services.orders.domain.orchestration import SHIPPABLE, DeadSteps, StockState, Stored
from services.orders.domain.payments import PaymentRecord, PaymentState
from services.orders.domain.timeline import Entry
from tests.unit.fake_uow import SnapshotUnitOfWork

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# the handlers never touch the keys (the store seals); the policy carries them for the store and views
POLICY = handlers.Policy(
    keys=KeyRing(keys={"k1": os.urandom(32)}, active_key_id="k1", hash_key=os.urandom(32)),
    rules=status_rules.shipped_rules(),
)
_STEP_FIELDS = (
    "step",
    "step_due_at",
    "step_attempts",
    "step_error",
    "step_dead",
    "step_paused_since",
    "step_pauses",
    "step_waiting_for",
    "step_traceparent",
)


class StaleWrite(Exception):
    """The fake's ConcurrentChange: the order changed since it was read."""


@dataclass
class State:
    orders: dict[str, Stored] = field(default_factory=dict)
    timeline: list[tuple[str, Entry]] = field(default_factory=list)
    published: list[tuple[str, object]] = field(default_factory=list)
    payloads: dict[str, bytes] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    payment_due: dict[str, datetime | None] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    source_status: dict[tuple[str, str], Observation] = field(default_factory=dict)
    statements: dict[tuple[str, str], tuple[str, dict[str, Any], list[rec.Row]]] = field(default_factory=dict)
    assignments: dict[str, set[str]] = field(default_factory=dict)
    overdue: dict[str, str] = field(default_factory=dict)
    sla_owners: dict[str, sla.Owners] = field(default_factory=dict)
    evaluations: list[tuple[str, Any, Any]] = field(default_factory=list)


class FakeOrderRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    def _by_channel(self, channel: Channel, channel_order_id: str) -> Stored | None:
        for stored in self.state.orders.values():
            order = stored.order
            if order.channel is channel and order.channel_order_id == channel_order_id:
                return stored
        return None

    def _record(self, order: Order, entries: Sequence[Entry]) -> None:
        self.state.timeline += [(order.order_id, entry) for entry in entries]
        self.state.published += [(order.order_id, event) for event in order.events]

    async def add_new(
        self,
        new: Sequence[tuple[Stored, Sequence[Entry], bytes]],
        at: datetime,
        evaluations: Sequence[tuple[str, Any, Any]] = (),
    ) -> set[str]:
        inserted = set()
        for stored, entries, raw in new:
            order = stored.order
            if self._by_channel(order.channel, order.channel_order_id) is None:
                self._record(order, entries)
                order.events.clear()
                self.state.orders[order.order_id] = copy.deepcopy(stored)
                self.state.evaluations.extend(item for item in evaluations if item[0] == order.order_id)
                if raw:
                    self.state.payloads[order.order_id] = raw
                inserted.add(order.order_id)
            order.events.clear()
        return inserted

    async def save(
        self,
        stored: Stored,
        entries: Sequence[Entry],
        at: datetime,
        *,
        scheduled: bool = False,
        linked_trace_id: str = "",
    ) -> None:
        order = stored.order
        current = self.state.orders[order.order_id]
        if current.order.version != order.version:
            raise StaleWrite(order.order_id)
        self._record(order, entries)
        order.events.clear()
        written = copy.deepcopy(stored)
        written.order.version += 1
        if not scheduled:  # as the store: the step's bookkeeping is written only when scheduled
            for name in _STEP_FIELDS:
                setattr(written, name, getattr(current, name))
        self.state.orders[order.order_id] = written
        order.version += 1

    async def add_timeline(
        self, order_id: str, entries: Sequence[Entry], at: datetime, linked_trace_id: str = ""
    ) -> None:
        self.state.timeline += [(order_id, entry) for entry in entries]

    async def get(self, order_id: str, lock: bool = False) -> Stored | None:
        found = self.state.orders.get(order_id)
        return copy.deepcopy(found) if found else None

    async def get_many_locked(self, order_ids: Sequence[str]) -> dict[str, Stored]:
        return {
            order_id: copy.deepcopy(self.state.orders[order_id])
            for order_id in sorted(set(order_ids))
            if order_id in self.state.orders
        }

    async def stored_refs(self, refs: Sequence[tuple[Channel, str]]) -> set[tuple[Channel, str]]:
        return {ref for ref in refs if self._by_channel(*ref) is not None}

    async def get_by_channel(
        self, channel: Channel, channel_order_id: str, lock: bool = False
    ) -> Stored | None:
        found = self._by_channel(channel, channel_order_id)
        return copy.deepcopy(found) if found else None

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[Stored]:
        due = [
            s
            for s in self.state.orders.values()
            if s.step and not s.step_dead and s.step_due_at is not None and s.step_due_at <= now
        ][:limit]
        for stored in due:
            stored.step_due_at, stored.step_attempts, stored.step_waiting_for = (
                lease_until,
                stored.step_attempts + 1,
                None,
            )
        return copy.deepcopy(due)

    async def step_failed(
        self, order_id: str, error: str, due_at: datetime | None, dead: bool, now: datetime
    ) -> None:
        stored = self.state.orders[order_id]
        stored.step_error, stored.step_due_at, stored.step_dead, stored.step_failed_at = (
            error,
            due_at,
            dead,
            now,
        )
        if dead:
            stored.step = None

    async def step_paused(
        self, order_id: str, peer: str, error: str, due_at: datetime, now: datetime
    ) -> None:
        stored = self.state.orders[order_id]
        stored.step_error, stored.step_due_at, stored.step_waiting_for = error, due_at, peer
        stored.step_attempts = max(stored.step_attempts - 1, 0)
        stored.step_pauses += 1
        stored.step_paused_since = stored.step_paused_since or now

    async def wake_paused(self, peers: list[str], now: datetime) -> int:
        woken = 0
        for stored in self.state.orders.values():
            if (
                stored.step_waiting_for in peers
                and stored.step
                and stored.step_due_at
                and stored.step_due_at > now
            ):
                stored.step_due_at = now
                woken += 1
        return woken

    async def replay_step(self, order_id: str, now: datetime) -> bool:
        stored = self.state.orders.get(order_id)
        if stored is None or not stored.step_dead:
            return False
        stored.step_dead, stored.step_attempts, stored.step_due_at = False, 0, now
        return True

    def _dead(self, which: DeadSteps) -> list[Stored]:
        return [
            s
            for s in self.state.orders.values()
            if s.step_dead and which.reason_contains.lower() in s.step_error.lower()
        ]

    async def count_dead_steps(self, which: DeadSteps) -> int:
        return len(self._dead(which))

    async def replay_dead_steps(self, which: DeadSteps, limit: int, now: datetime) -> list[str]:
        chosen = self._dead(which)[:limit]
        for stored in chosen:
            stored.step_dead, stored.step_attempts, stored.step_due_at = False, 0, now
        return [stored.order.order_id for stored in chosen]

    def _held_for_stock(self, stored: Stored) -> bool:
        order = stored.order
        return (order.status is OrderStatus.ON_HOLD and order.hold_cause is HoldCause.OUT_OF_STOCK) or (
            order.status is OrderStatus.EXCEPTION and order.hold_cause is HoldCause.PAID_OUT_OF_STOCK
        )

    async def held_for_stock(self, sku: str, limit: int) -> list[Stored]:
        held = [
            s
            for s in self.state.orders.values()
            if self._held_for_stock(s) and any(line.sku == sku for line in s.order.lines)
        ]
        return copy.deepcopy(sorted(held, key=lambda s: s.order.order_id)[:limit])

    async def held_for_stock_since(self, before: datetime, limit: int) -> list[Stored]:
        held = [
            s for s in self.state.orders.values() if self._held_for_stock(s) and s.order.updated_at < before
        ]
        return copy.deepcopy(held[:limit])

    async def unowned(self, before: datetime, limit: int) -> list[Stored]:
        def needs_step(s: Stored) -> bool:
            status, stock = s.order.status, StockState(s.stock_state)
            return (
                (
                    status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)
                    and stock in (StockState.NONE, StockState.RELEASED)
                )
                or (status is OrderStatus.PAID and stock is StockState.RESERVED)
                or (
                    status is OrderStatus.CANCELLED
                    and (
                        stock in (StockState.RESERVED, StockState.COMMITTED) or s.order.shipments_in_warehouse
                    )
                )
                or (
                    status in SHIPPABLE and s.order.shipping_plan is not None and not s.order.shipments_listed
                )
            )

        found = [
            s
            for s in self.state.orders.values()
            if needs_step(s) and s.step is None and not s.step_dead and s.order.updated_at < before
        ]
        return copy.deepcopy(found[:limit])

    async def count_not_taken(self, before: datetime) -> int:
        return sum(
            1
            for s in self.state.orders.values()
            if s.step and not s.step_waiting_for and s.step_due_at is not None and s.step_due_at < before
        )

    async def reseal(self, batch: int) -> int:
        return 0

    async def sla_due(self, now: datetime, limit: int) -> list[Stored]:
        due = [s for s in self.state.orders.values() if s.sla.due_at is not None and s.sla.due_at <= now]
        due.sort(key=lambda s: (s.sla.due_at, s.order.order_id))
        return copy.deepcopy(due[:limit])


class FakePaymentRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(self, record: PaymentRecord, next_attempt_at: datetime) -> bool:
        note = record.notification
        if await self.by_transaction(note.provider, note.transaction_id) is not None:
            return False
        self.state.payments[record.payment_id] = copy.deepcopy(record)
        self.state.payment_due[record.payment_id] = next_attempt_at
        return True

    async def get(self, payment_id: str, lock: bool = False) -> PaymentRecord | None:
        found = self.state.payments.get(payment_id)
        return copy.deepcopy(found) if found else None

    async def by_transaction(self, provider: str, transaction_id: str) -> PaymentRecord | None:
        for record in self.state.payments.values():
            note = record.notification
            if (note.provider, note.transaction_id) == (provider, transaction_id):
                return copy.deepcopy(record)
        return None

    async def settle(self, record: PaymentRecord, now: datetime) -> None:
        self.state.payments[record.payment_id] = copy.deepcopy(record)
        self.state.payment_due[record.payment_id] = None

    async def attempt_failed(self, payment_id: str, error: str, now: datetime) -> PaymentRecord:
        record = self.state.payments[payment_id]
        record.attempts += 1
        record.reason = error
        return copy.deepcopy(record)

    async def retry(self, record: PaymentRecord, next_attempt_at: datetime | None) -> None:
        self.state.payments[record.payment_id].state = record.state
        self.state.payment_due[record.payment_id] = next_attempt_at

    async def due(self, now: datetime, limit: int) -> list[str]:
        return [
            payment_id
            for payment_id, record in self.state.payments.items()
            if record.state is PaymentState.RECEIVED
            and (at := self.state.payment_due.get(payment_id)) is not None
            and at <= now
        ][:limit]

    async def replay(self, payment_id: str, now: datetime) -> bool:
        record = self.state.payments.get(payment_id)
        if record is None or record.state is not PaymentState.DEAD:
            return False
        record.state, record.attempts = PaymentState.RECEIVED, 0
        self.state.payment_due[payment_id] = now
        return True


class FakeStatementRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    async def report(self, owner: str, statement_id: str) -> dict[str, Any] | None:
        found = self.state.statements.get((owner, statement_id))
        return copy.deepcopy(found[1]) if found else None

    async def add(
        self,
        owner: str,
        statement_id: str,
        provider: str,
        imported_at: datetime,
        report: dict[str, Any],
        rows: Sequence[rec.Row],
    ) -> None:
        self.state.statements.setdefault((owner, statement_id), (provider, report, list(rows)))

    async def row(self, owner: str, statement_id: str, transaction_id: str) -> tuple[str, rec.Row] | None:
        found = self.state.statements.get((owner, statement_id))
        if found is None:
            return None
        provider, _, rows = found
        return next(((provider, row) for row in rows if row.transaction_id == transaction_id), None)

    async def applied(self, provider: str, start: datetime, end: datetime) -> list[rec.Recorded]:
        return [
            rec.Recorded(
                r.payment_id,
                r.notification.transaction_id,
                r.order_id or "",
                r.notification.amount_minor,
                r.notification.paid_at,
            )
            for r in self.state.payments.values()
            if r.notification.provider == provider
            and r.state is PaymentState.APPLIED
            and start <= r.notification.paid_at <= end
        ]

    async def orders_by_number(self, numbers: Sequence[str]) -> dict[str, rec.OrderFacts]:
        found: dict[str, rec.OrderFacts] = {}
        for stored in self.state.orders.values():
            order = stored.order
            facts = rec.OrderFacts(order.order_id, order.payable_minor, order.placed_at, order.is_paid)
            if order.order_id in numbers:
                found[order.order_id] = facts
            if order.channel is Channel.OWN_SHOP and order.channel_order_id in numbers:
                found.setdefault(order.channel_order_id, facts)
        return found

    async def candidates(self, row: rec.Row) -> list[rec.OrderFacts]:
        return []


class FakeSourceRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add_report(
        self,
        order_id: str,
        source: str,
        fields: dict[str, Any],
        observation: Observation | None,
        rules_version: int,
        reported_at: datetime,
        received_at: datetime,
    ) -> None:
        self.state.reports.append({"order_id": order_id, "source": source, "fields": fields})

    async def observed(
        self, order_id: str, source: str, observation: Observation, reported_at: datetime, now: datetime
    ) -> None:
        self.state.source_status[(order_id, source)] = observation


class FakeQuarantineRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(
        self,
        channel: str,
        channel_order_id: str,
        error_field: str,
        reason: str,
        payload: Mapping[str, Any],
        received_at: datetime,
    ) -> None:
        self.state.quarantine.append(
            {
                "channel": channel,
                "channel_order_id": channel_order_id,
                "error_field": error_field,
                "reason": reason,
                "payload": dict(payload),
                "received_at": received_at,
            }
        )


class FakeAssignmentRepository:
    def __init__(self, state: State) -> None:
        self.state = state

    async def assign(
        self, agent_id: str, buyer_ids: Sequence[str], replace: bool, now: datetime
    ) -> list[str]:
        if replace:
            self.state.assignments[agent_id] = set()
        self.state.assignments.setdefault(agent_id, set()).update(buyer_ids)
        return sorted(self.state.assignments[agent_id])

    async def customers_of(self, agent_id: str) -> list[str]:
        return sorted(self.state.assignments.get(agent_id, set()))

    async def is_assigned(self, agent_id: str, buyer_id: str) -> bool:
        return buyer_id in self.state.assignments.get(agent_id, set())


class FakeOverdueTickets:
    def __init__(self, state: State) -> None:
        self.state = state

    async def flag(self, buyer_id: str, ticket_id: str, at: datetime) -> None:
        self.state.overdue.setdefault(ticket_id, buyer_id)

    async def clear(self, ticket_ids: Sequence[str]) -> None:
        for ticket_id in ticket_ids:
            self.state.overdue.pop(ticket_id, None)

    async def customers_among(self, buyer_ids: Sequence[str]) -> set[str]:
        return {buyer for buyer in self.state.overdue.values() if buyer in buyer_ids}


class FakeSla:
    def __init__(self, state: State) -> None:
        self.state = state

    async def owners(self, queues: Sequence[str]) -> dict[str, sla.Owners]:
        return {queue: self.state.sla_owners[queue] for queue in queues if queue in self.state.sla_owners}

    async def all_owners(self) -> dict[str, sla.Owners]:
        return dict(sorted(self.state.sla_owners.items()))

    async def set_owners(self, queue: str, owners: sla.Owners, by: str, at: datetime) -> None:
        self.state.sla_owners[queue] = owners


class FakeRisk:
    """Risk as the unit tests need it: no rule set stored (the defaults apply), no phone history."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def active(self) -> None:
        return None

    async def phone_history(self, phones: Sequence[str], since: datetime) -> dict[str, tuple[int, list[str]]]:
        return {}

    async def add_evaluations(self, evaluations: Sequence[tuple[str, Any, Any]], at: datetime) -> None:
        self.state.evaluations.extend(evaluations)


class FakeUnitOfWork(SnapshotUnitOfWork[State]):
    def __init__(self, shared: State, clock: FixedClock) -> None:
        self._clock = clock
        super().__init__(shared)

    def bind(self, state: State) -> None:
        self._orders = FakeOrderRepository(state)
        self._payments = FakePaymentRepository(state)
        self._statements = FakeStatementRepository(state)
        self._sources = FakeSourceRepository(state)
        self._quarantine = FakeQuarantineRepository(state)
        self._assignments = FakeAssignmentRepository(state)
        self._overdue = FakeOverdueTickets(state)
        self._sla = FakeSla(state)
        self._risk = FakeRisk(state)

    @property
    def clock(self) -> FixedClock:
        return self._clock

    @property
    def orders(self) -> FakeOrderRepository:
        return self._orders

    @property
    def payments(self) -> FakePaymentRepository:
        return self._payments

    @property
    def statements(self) -> FakeStatementRepository:
        return self._statements

    @property
    def sources(self) -> FakeSourceRepository:
        return self._sources

    @property
    def quarantine(self) -> FakeQuarantineRepository:
        return self._quarantine

    @property
    def assignments(self) -> FakeAssignmentRepository:
        return self._assignments

    @property
    def overdue(self) -> FakeOverdueTickets:
        return self._overdue

    @property
    def sla(self) -> FakeSla:
        return self._sla

    @property
    def risk(self) -> FakeRisk:
        return self._risk

    def emit(self, *events: object) -> None:
        super().emit(*(("", event) for event in events))

    def collect(self, order: Order) -> None:
        super().emit(*((order.order_id, event) for event in order.events))
        order.events.clear()


class FakeOrders:
    """One in-memory orders database and its clock; `uow()` makes units of work on it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.state = State()
        self.clock = FixedClock(now)

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.state, self.clock)

    def order(self, order_id: str) -> Stored:
        return self.state.orders[order_id]

    def kinds(self, order_id: str) -> list[str]:
        """The kinds of the order's timeline entries, oldest first."""
        return [entry.kind for owner, entry in self.state.timeline if owner == order_id]

    def published(self, kind: type[object]) -> list[tuple[str, object]]:
        return [(owner, event) for owner, event in self.state.published if isinstance(event, kind)]
