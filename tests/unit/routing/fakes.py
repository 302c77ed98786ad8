"""In-memory repositories and unit of work implementing `services.routing.handlers.ports`, as the store
does: a unit of work rolls back unless committed, and its events are published only on commit."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument
from services.routing.domain.events import Event
from services.routing.domain.model import (
    Decision,
    DueRetry,
    ParkedOrder,
    ParkReason,
    RecordedDecision,
    SkuFacts,
    Stock,
)
from services.routing.domain.regression import ExpectedDecision, PastDecision
from services.routing.domain.rules import RuleSetStatus, RuleSetVersion
from services.routing.handlers import ports
from tests.unit.fake_uow import SnapshotUnitOfWork


@dataclass
class LoggedDecision:
    recorded: RecordedDecision
    inputs: dict[str, Any]
    shadow: Decision | None
    superseded_by: str = ""

    @property
    def current_plan(self) -> bool:
        return not self.recorded.decision.parked and not self.superseded_by


@dataclass
class Parked:
    order: ParkedOrder
    request: dict[str, Any]
    skus: list[str]
    retry_due: datetime | None = None


@dataclass
class State:
    decisions: list[LoggedDecision] = field(default_factory=list)
    parked: dict[str, Parked] = field(default_factory=dict)
    rule_sets: dict[int, RuleSetVersion] = field(default_factory=dict)
    expected: list[ExpectedDecision] = field(default_factory=list)
    load: dict[tuple[date, str], int] = field(default_factory=dict)
    published: list[Event] = field(default_factory=list)


class FakeDecisionLog:
    def __init__(self, state: State) -> None:
        self.state = state

    async def lock_order(self, order_id: str) -> None:
        return None

    async def current_plan_id(self, order_id: str) -> str | None:
        return next(
            (
                d.recorded.decision_id
                for d in self.state.decisions
                if d.recorded.order_id == order_id and d.current_plan
            ),
            None,
        )

    async def supersede(self, decision_id: str, by: str) -> None:
        for logged in self.state.decisions:
            if logged.recorded.decision_id == decision_id and not logged.superseded_by:
                logged.superseded_by = by

    async def add(self, recorded: RecordedDecision, inputs: dict[str, Any], shadow: Decision | None) -> bool:
        if not recorded.decision.parked and await self.current_plan_id(recorded.order_id):
            return False  # the unique index on current plans
        self.state.decisions.append(LoggedDecision(recorded, as_stored(inputs), shadow))
        return True

    async def current(self, order_id: str) -> RecordedDecision | None:
        mine = [(n, d) for n, d in enumerate(self.state.decisions) if d.recorded.order_id == order_id]
        mine.sort(key=lambda item: (item[1].current_plan, item[1].recorded.decided_at, item[0]), reverse=True)
        return mine[0][1].recorded if mine else None

    async def recent(self, limit: int) -> list[PastDecision]:
        latest = sorted(self.state.decisions, key=lambda d: d.recorded.decided_at, reverse=True)[:limit]
        return [PastDecision(d.recorded.order_id, d.inputs, d.recorded.decision) for d in latest]


class FakeParkedOrders:
    def __init__(self, state: State) -> None:
        self.state = state

    async def park(self, order: ParkedOrder, request: dict[str, Any], skus: Sequence[str]) -> None:
        existing = self.state.parked.get(order.order_id)
        if existing is None:
            self.state.parked[order.order_id] = Parked(order, as_stored(request), list(skus))
        else:
            existing.order = replace(
                existing.order, reason=order.reason, detail=order.detail, attempts=existing.order.attempts + 1
            )

    async def unpark(self, order_id: str) -> bool:
        return self.state.parked.pop(order_id, None) is not None

    async def mark_due_for_sku(self, sku: str, reasons: Collection[ParkReason], at: datetime) -> int:
        marked = [p for p in self.state.parked.values() if sku in p.skus and p.order.reason in reasons]
        for parked in marked:
            parked.retry_due = at
        return len(marked)

    async def mark_all_due(self, at: datetime) -> None:
        for parked in self.state.parked.values():
            parked.retry_due = at

    async def due(self, now: datetime, limit: int) -> list[DueRetry]:
        due = sorted(
            (p for p in self.state.parked.values() if p.retry_due is not None and p.retry_due <= now),
            key=lambda p: p.retry_due or now,
        )
        return [DueRetry(p.order.order_id, p.request, p.retry_due) for p in due[:limit] if p.retry_due]

    async def set_retry(self, order_id: str, seen: datetime, retry_due: datetime | None) -> None:
        parked = self.state.parked.get(order_id)
        if parked is not None and parked.retry_due == seen:
            parked.retry_due = retry_due


def as_stored(document: dict[str, Any]) -> dict[str, Any]:
    """A document as a JSONB column gives it back (tuples become lists)."""
    stored: dict[str, Any] = json.loads(json.dumps(document))
    return stored


class FakeRuleSets:
    def __init__(self, state: State) -> None:
        self.state = state

    async def next_version(self) -> int:
        return max(self.state.rule_sets, default=0) + 1

    async def add(self, rule_set: RuleSetVersion) -> None:
        assert rule_set.version not in self.state.rule_sets, "the primary key"
        self.state.rule_sets[rule_set.version] = replace(rule_set, document=as_stored(rule_set.document))

    async def add_if_missing(self, rule_set: RuleSetVersion) -> None:
        self.state.rule_sets.setdefault(
            rule_set.version, replace(rule_set, document=as_stored(rule_set.document))
        )

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None:
        return self.state.rule_sets.get(version)

    async def active(self) -> RuleSetVersion | None:
        return next((r for r in self.state.rule_sets.values() if r.status is RuleSetStatus.ACTIVE), None)

    async def active_and_shadow(self) -> tuple[RuleSetVersion | None, RuleSetVersion | None]:
        return await self.active(), next((r for r in self.state.rule_sets.values() if r.shadow), None)

    async def retire_active(self) -> int | None:
        active = await self.active()
        if active is None:
            return None
        self.state.rule_sets[active.version] = replace(active, status=RuleSetStatus.RETIRED)
        return active.version

    async def activate(self, version: int, at: datetime) -> RuleSetVersion:
        activated = replace(self.state.rule_sets[version], status=RuleSetStatus.ACTIVE, activated_at=at)
        self.state.rule_sets[version] = activated
        return activated

    async def clear_shadow(self) -> None:
        for version, rule_set in self.state.rule_sets.items():
            self.state.rule_sets[version] = replace(rule_set, shadow=False)

    async def set_shadow(self, version: int) -> RuleSetStatus | None:
        found = self.state.rule_sets.get(version)
        if found is None:
            return None
        self.state.rule_sets[version] = replace(found, shadow=True)
        return found.status


class FakeExpectedDecisions:
    def __init__(self, state: State) -> None:
        self.state = state

    async def replace(self, cases: Sequence[ExpectedDecision]) -> None:
        self.state.expected = list(cases)

    async def all(self) -> list[ExpectedDecision]:
        return list(self.state.expected)


class FakeWarehouseLoad:
    def __init__(self, state: State) -> None:
        self.state = state

    async def on(self, day: date) -> dict[str, int]:
        return {warehouse: n for (when, warehouse), n in self.state.load.items() if when == day}

    async def count(self, day: date, warehouse_ids: Sequence[str]) -> None:
        for warehouse in warehouse_ids:
            self.state.load[(day, warehouse)] = self.state.load.get((day, warehouse), 0) + 1


class FakeStore:
    """The database and the outbox: what committed units of work left behind."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.state = State()

    @property
    def published(self) -> list[Event]:
        return self.state.published

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class FakeUnitOfWork(SnapshotUnitOfWork[State]):
    def __init__(self, store: FakeStore) -> None:
        self.clock = store.clock
        super().__init__(store.state)

    def bind(self, state: State) -> None:
        self.decisions = FakeDecisionLog(state)
        self.parked = FakeParkedOrders(state)
        self.rule_sets = FakeRuleSets(state)
        self.expected = FakeExpectedDecisions(state)
        self.load = FakeWarehouseLoad(state)


class FakeStock:
    """Inventory: units available per (sku, warehouse); SKUs outside `known` are refused as inventory
    refuses them (a field violation naming `skus[i]`)."""

    def __init__(
        self, levels: dict[tuple[str, str], int] | None = None, known: Collection[str] | None = None
    ) -> None:
        self.levels = dict(levels or {})
        self.known = known

    async def availability(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock:
        for index, sku in enumerate(skus):
            if self.known is not None and sku not in self.known:
                raise InvalidArgument(f"skus[{index}]", f"unknown SKU {sku}")
        levels = {(s, w): n for (s, w), n in self.levels.items() if s in skus and w in warehouses}
        return Stock(levels, {sku: SkuFacts() for sku in skus})


def conforms(uow: FakeUnitOfWork, stock: FakeStock) -> tuple[ports.UnitOfWork, ports.StockSource]:
    """Checked by mypy: the fakes implement the protocols the store and the peer implement."""
    return uow, stock
