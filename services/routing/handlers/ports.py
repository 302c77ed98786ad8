"""What the use cases need from outside: the unit of work with its repositories (the store implements
it, tests fake it) and live stock (the inventory peer)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.kit.clock import Clock
from services.routing.domain.events import Event
from services.routing.domain.model import (
    Decision,
    DueRetry,
    ParkedOrder,
    ParkReason,
    RecordedDecision,
    Stock,
)
from services.routing.domain.regression import ExpectedDecision, PastDecision
from services.routing.domain.rules import RuleSetStatus, RuleSetVersion


class DecisionLog(Protocol):
    async def lock_order(self, order_id: str) -> None:
        """Until the transaction ends, decisions of this order are written by this caller only."""

    async def current_plan_id(self, order_id: str) -> str | None:
        """The order's planned decision that no replan superseded, if any."""

    async def supersede(self, decision_id: str, by: str) -> None: ...

    async def add(self, recorded: RecordedDecision, inputs: dict[str, Any], shadow: Decision | None) -> bool:
        """False (nothing written) when the order already has a current plan and this is one too."""

    async def current(self, order_id: str) -> RecordedDecision | None:
        """The order's decision: its current plan if it has one, else the latest (a park)."""

    async def recent(self, limit: int) -> list[PastDecision]: ...


class ParkedOrders(Protocol):
    async def park(self, order: ParkedOrder, request: dict[str, Any], skus: Sequence[str]) -> None:
        """Park the order, or count one more attempt if it is parked (its due mark is kept)."""

    async def unpark(self, order_id: str) -> bool: ...

    async def mark_due_for_sku(self, sku: str, reasons: Collection[ParkReason], at: datetime) -> int: ...

    async def mark_all_due(self, at: datetime) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[DueRetry]:
        """Orders marked due by `now`, the longest waiting first."""

    async def set_retry(self, order_id: str, seen: datetime, retry_due: datetime | None) -> None:
        """Move the due mark, unless it changed since it was `seen`."""


class RuleSets(Protocol):
    async def next_version(self) -> int: ...

    async def add(self, rule_set: RuleSetVersion) -> None: ...

    async def add_if_missing(self, rule_set: RuleSetVersion) -> None: ...

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None: ...

    async def active(self) -> RuleSetVersion | None: ...

    async def active_and_shadow(self) -> tuple[RuleSetVersion | None, RuleSetVersion | None]: ...

    async def retire_active(self) -> int | None:
        """Retire the active rule set; its version."""

    async def activate(self, version: int, at: datetime) -> RuleSetVersion: ...

    async def clear_shadow(self) -> None: ...

    async def set_shadow(self, version: int) -> RuleSetStatus | None:
        """Shadow this rule set; its status, or None if there is no such version."""


class ExpectedDecisions(Protocol):
    async def replace(self, cases: Sequence[ExpectedDecision]) -> None: ...

    async def all(self) -> list[ExpectedDecision]: ...


class WarehouseLoad(Protocol):
    async def on(self, day: date) -> dict[str, int]:
        """Orders planned per warehouse that day."""

    async def count(self, day: date, warehouse_ids: Sequence[str]) -> None:
        """One more order planned at each warehouse that day."""


class UnitOfWork(Protocol):
    """One transaction: rolled back unless committed; the events emitted are published with it."""

    clock: Clock

    @property
    def decisions(self) -> DecisionLog: ...

    @property
    def parked(self) -> ParkedOrders: ...

    @property
    def rule_sets(self) -> RuleSets: ...

    @property
    def expected(self) -> ExpectedDecisions: ...

    @property
    def load(self) -> WarehouseLoad: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def emit(self, event: Event) -> None: ...

    async def commit(self) -> None: ...


class StockSource(Protocol):
    """Live availability and the catalogue; raises InvalidArgument naming `skus[i]` for unknown SKUs."""

    async def availability(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock: ...
