"""What a use case may ask of the store: the unit of work and its repositories, as protocols.

services.orders.store implements them on Postgres; tests/unit/orders/fakes.py in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.orders.domain import reconciliation as rec
from services.orders.domain import risk, sla
from services.orders.domain.anchor import Observation
from services.orders.domain.model import Channel, Order
from services.orders.domain.orchestration import DeadSteps, Stored
from services.orders.domain.payments import PaymentRecord
from services.orders.domain.timeline import Entry


class Clock(Protocol):
    def now(self) -> datetime: ...


class Orders(Protocol):
    async def add_new(
        self,
        new: Sequence[tuple[Stored, Sequence[Entry], bytes]],
        at: datetime,
        evaluations: Sequence[tuple[str, risk.Evaluation, Mapping[str, Any]]] = (),
    ) -> set[str]:
        """Insert (order, its timeline, its raw payload) with the orders' events; the ids inserted."""
        ...

    async def save(
        self,
        stored: Stored,
        entries: Sequence[Entry],
        at: datetime,
        *,
        scheduled: bool = False,
        linked_trace_id: str = "",
    ) -> None:
        """Write back a loaded order with its timeline and events, if nobody changed it since."""
        ...

    async def add_timeline(
        self, order_id: str, entries: Sequence[Entry], at: datetime, linked_trace_id: str = ""
    ) -> None: ...

    async def get(self, order_id: str, lock: bool = False) -> Stored | None: ...

    async def get_many_locked(self, order_ids: Sequence[str]) -> dict[str, Stored]: ...

    async def stored_refs(self, refs: Sequence[tuple[Channel, str]]) -> set[tuple[Channel, str]]: ...

    async def get_by_channel(
        self, channel: Channel, channel_order_id: str, lock: bool = False
    ) -> Stored | None: ...

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[Stored]: ...

    async def step_failed(
        self, order_id: str, error: str, due_at: datetime | None, dead: bool, now: datetime
    ) -> None: ...

    async def step_paused(
        self, order_id: str, peer: str, error: str, due_at: datetime, now: datetime
    ) -> None: ...

    async def wake_paused(self, peers: list[str], now: datetime) -> int: ...

    async def replay_step(self, order_id: str, now: datetime) -> bool: ...

    async def count_dead_steps(self, which: DeadSteps) -> int: ...

    async def replay_dead_steps(self, which: DeadSteps, limit: int, now: datetime) -> list[str]: ...

    async def held_for_stock(self, sku: str, limit: int) -> list[Stored]: ...

    async def held_for_stock_since(self, before: datetime, limit: int) -> list[Stored]: ...

    async def unowned(self, before: datetime, limit: int) -> list[Stored]: ...

    async def count_not_taken(self, before: datetime) -> int: ...

    async def sla_due(self, now: datetime, limit: int) -> list[Stored]: ...

    async def reseal(self, batch: int) -> int: ...


class Payments(Protocol):
    async def add(self, record: PaymentRecord, next_attempt_at: datetime) -> bool: ...

    async def get(self, payment_id: str, lock: bool = False) -> PaymentRecord | None: ...

    async def by_transaction(self, provider: str, transaction_id: str) -> PaymentRecord | None: ...

    async def settle(self, record: PaymentRecord, now: datetime) -> None: ...

    async def attempt_failed(self, payment_id: str, error: str, now: datetime) -> PaymentRecord: ...

    async def retry(self, record: PaymentRecord, next_attempt_at: datetime | None) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[str]: ...

    async def replay(self, payment_id: str, now: datetime) -> bool: ...


class Statements(Protocol):
    async def report(self, owner: str, statement_id: str) -> dict[str, Any] | None: ...

    async def add(
        self,
        owner: str,
        statement_id: str,
        provider: str,
        imported_at: datetime,
        report: dict[str, Any],
        rows: Sequence[rec.Row],
    ) -> None: ...

    async def row(self, owner: str, statement_id: str, transaction_id: str) -> tuple[str, rec.Row] | None: ...

    async def applied(self, provider: str, start: datetime, end: datetime) -> list[rec.Recorded]: ...

    async def orders_by_number(self, numbers: Sequence[str]) -> dict[str, rec.OrderFacts]: ...

    async def candidates(self, row: rec.Row) -> list[rec.OrderFacts]: ...


class Sources(Protocol):
    async def add_report(
        self,
        order_id: str,
        source: str,
        fields: dict[str, Any],
        observation: Observation | None,
        rules_version: int,
        reported_at: datetime,
        received_at: datetime,
    ) -> None: ...

    async def observed(
        self, order_id: str, source: str, observation: Observation, reported_at: datetime, now: datetime
    ) -> None: ...


class Quarantine(Protocol):
    async def add(
        self,
        channel: str,
        channel_order_id: str,
        error_field: str,
        reason: str,
        payload: Mapping[str, Any],
        received_at: datetime,
    ) -> None: ...


class OverdueTickets(Protocol):
    """Customers with an after-sales ticket past its response limit, as after-sales' events tell."""

    async def flag(self, buyer_id: str, ticket_id: str, at: datetime) -> None: ...

    async def clear(self, ticket_ids: Sequence[str]) -> None:
        """No longer overdue: these tickets were answered (one statement for them all)."""

    async def customers_among(self, buyer_ids: Sequence[str]) -> set[str]: ...


class Assignments(Protocol):
    async def assign(
        self, agent_id: str, buyer_ids: Sequence[str], replace: bool, now: datetime
    ) -> list[str]: ...

    async def customers_of(self, agent_id: str) -> list[str]: ...

    async def is_assigned(self, agent_id: str, buyer_id: str) -> bool: ...


class Sla(Protocol):
    async def owners(self, queues: Sequence[str]) -> dict[str, sla.Owners]: ...

    async def all_owners(self) -> dict[str, sla.Owners]: ...

    async def set_owners(self, queue: str, owners: sla.Owners, by: str, at: datetime) -> None: ...


class Risk(Protocol):
    async def active(self) -> risk.RuleSetRecord | None: ...

    async def get(self, version: int) -> risk.RuleSetRecord | None: ...

    async def add(self, rule_set: risk.RuleSetRecord) -> int: ...

    async def lock_versions(self) -> None: ...

    async def activate(self, version: int, at: datetime, by: str) -> None: ...

    async def phone_history(
        self, phones: Sequence[str], since: datetime
    ) -> dict[str, tuple[int, list[str]]]: ...

    async def add_evaluations(
        self, evaluations: Sequence[tuple[str, risk.Evaluation, Mapping[str, Any]]], at: datetime
    ) -> None: ...

    async def recent_facts(self, limit: int) -> list[tuple[str, dict[str, Any], bool]]: ...

    async def latest(self, order_id: str, held_unreviewed: bool = False) -> risk.EvaluationRecord | None: ...

    async def to_review(
        self, limit: int, after: tuple[datetime, str] | None
    ) -> list[risk.EvaluationRecord]: ...

    async def review(self, evaluation_id: int, review: str, by: str, at: datetime, note: str) -> None: ...

    async def rule_stats(self, since: datetime) -> list[risk.RuleStats]: ...


class UnitOfWork(Protocol):
    """One transaction: rolled back unless committed. A joined one (a consumer's inbox transaction)
    is used without entering it; its owner commits."""

    @property
    def clock(self) -> Clock: ...

    @property
    def orders(self) -> Orders: ...

    @property
    def payments(self) -> Payments: ...

    @property
    def statements(self) -> Statements: ...

    @property
    def sources(self) -> Sources: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def assignments(self) -> Assignments: ...

    @property
    def overdue(self) -> OverdueTickets: ...

    @property
    def sla(self) -> Sla: ...

    @property
    def risk(self) -> Risk: ...

    def emit(self, *events: object) -> None:
        """Queue events about no order being saved (a ServiceAlert) for the outbox."""
        ...

    def collect(self, order: Order) -> None:
        """Queue the order's recorded events for the outbox when the order itself is not saved."""
        ...

    async def commit(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
