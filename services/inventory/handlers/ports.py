"""What a use case may ask of the store: the unit of work and its repositories, as protocols.

services.inventory.store implements them on Postgres; tests/unit/inventory/fakes.py in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from services.inventory.domain.events import Event
from services.inventory.domain.model import (
    BucketUnits,
    Line,
    Movement,
    Placement,
    ReplenishmentOrder,
    ReplenishmentStatus,
    Reservation,
    ReservationStatus,
    Sku,
    SkuEntry,
    StockAudit,
    StockBucket,
    StockRow,
)
from services.kit.clock import Clock


class Stock(Protocol):
    async def reserve(
        self, reservation: Reservation, cap_basis_points: int, *, fast: bool = True, bucketed: bool = False
    ) -> tuple[Placement, list[StockRow]]:
        """All the reservation's lines or none; RESERVED with the rows whose safety stock may have moved.
        `bucketed`: the one line's row is known to be split into buckets (a hint)."""
        ...

    async def reserve_together(
        self, reservations: Sequence[Reservation], cap_basis_points: int, traceparents: Sequence[str]
    ) -> list[Placement | None]:
        """New reservations in one transaction, in the order given: RESERVED, SHORT, BUCKETED or None
        (nothing written, left for `reserve`: a row split into buckets, held by the order already, a
        safety level crossed)."""
        ...

    async def settle(
        self, lines: Sequence[Line], *, deduct: bool, buckets: Sequence[BucketUnits] = ()
    ) -> list[StockRow]:
        """`buckets`: which of the lines' units were taken from buckets."""
        ...

    async def move(
        self,
        reservation_id: str,
        moving: Line,
        to_warehouse: str,
        cap_basis_points: int,
        bucket: int | None = None,
    ) -> list[StockRow] | None: ...

    async def split(self, sku: str, warehouse_id: str, buckets: int, cap_basis_points: int) -> StockRow:
        """The locked row split into `buckets` (0: no longer), its free units shared among them anew."""
        ...

    async def buckets(self, sku: str, warehouse_id: str) -> tuple[int, list[StockBucket]]: ...

    async def get(self, sku: str, warehouse_id: str) -> StockRow | None: ...

    async def lock(self, sku: str, warehouse_id: str) -> tuple[StockRow, int]: ...

    async def unit_cost(self, sku: str, warehouse_id: str) -> int: ...

    async def change_on_hand(
        self,
        sku: str,
        warehouse_id: str,
        delta: int,
        *,
        count_version: int | None = None,
        unit_cost: int | None = None,
    ) -> StockRow: ...

    async def set_levels(
        self, sku: str, warehouse_id: str, normal_level: int, safety_level: int
    ) -> StockRow: ...

    async def pool(self, sku: str) -> StockRow: ...

    async def set_sellable(self, sku: str, warehouse_id: str, sellable: bool) -> bool: ...

    async def levels(
        self, skus: Sequence[str], warehouses: Sequence[str], now: datetime
    ) -> list[tuple[StockRow, int]]: ...


class Reservations(Protocol):
    async def latest(self, order_id: str, *, for_update: bool = False) -> Reservation | None: ...

    async def transition(
        self,
        order_id: str,
        current: ReservationStatus,
        target: ReservationStatus,
        now: datetime,
        *,
        unexpired_at: datetime | None = None,
    ) -> Reservation | None: ...

    async def claim_expired(
        self, now: datetime, limit: int, keys: Sequence[tuple[str, str]] = ()
    ) -> list[Reservation]: ...

    async def mark(
        self, reservation_ids: Sequence[str], status: ReservationStatus, now: datetime
    ) -> None: ...


class Catalogue(Protocol):
    async def put_warehouse(self, warehouse_id: str, name: str) -> None: ...

    async def put_sku(self, entry: SkuEntry, now: datetime) -> tuple[Sku, bool]: ...

    async def sku(self, sku: str) -> Sku | None: ...

    async def unknown(self, skus: Iterable[str], warehouses: Iterable[str]) -> tuple[set[str], set[str]]: ...


class Replenishment(Protocol):
    async def open(self, sku: str, warehouse_id: str, suggested_quantity: int, now: datetime) -> str: ...

    async def close_open(self, sku: str, warehouse_id: str, note: str, now: datetime) -> None: ...

    async def lock(self, replenishment_order_id: str) -> ReplenishmentOrder | None: ...

    async def update(
        self, replenishment_order_id: str, status: ReplenishmentStatus, note: str, now: datetime
    ) -> ReplenishmentOrder: ...


class Ledger(Protocol):
    async def record(
        self,
        kind: Movement,
        now: datetime,
        moves: Iterable[tuple[str, str, int, int]],
        *,
        order_id: str = "",
        reference: str = "",
        reason: str = "",
        unit_costs: Sequence[int | None] | None = None,
    ) -> None: ...

    async def sale_costs(self, order_id: str, skus: Sequence[str]) -> dict[str, int]: ...

    async def audit(self) -> list[StockAudit]: ...


class Idempotency(Protocol):
    """Keys are the caller's: `owner` is who chose the key (another caller's same key is another key)."""

    async def claim(self, scope: str, key: str, digest: str, owner: str) -> bytes | None: ...

    async def complete(self, scope: str, key: str, response: bytes, owner: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: rolls back unless committed; emitted events commit with the changes."""

    @property
    def clock(self) -> Clock: ...

    @property
    def stock(self) -> Stock: ...

    @property
    def reservations(self) -> Reservations: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def replenishment(self) -> Replenishment: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def idempotency(self) -> Idempotency: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def emit(self, *events: Event) -> None: ...

    async def commit(self) -> None: ...
