"""Inventory's unit of work in memory: the protocols of services.inventory.handlers.ports, no IO.

All units of work made by one `FakeInventory` share its state; a unit of work that is not committed
leaves the state as it found it (like a transaction), and only committed events are `published`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from services.inventory.domain.events import Event
from services.inventory.domain.model import (
    POOL,
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
from services.kit.clock import FixedClock
from services.kit.errors import InvalidArgument
from tests.unit.fake_uow import SnapshotUnitOfWork

E = TypeVar("E")
LIVE = (ReservationStatus.ACTIVE, ReservationStatus.COMMITTED)


@dataclass
class Entry:
    kind: Movement
    sku: str
    warehouse_id: str
    on_hand_delta: int
    reserved_delta: int
    order_id: str
    reference: str
    reason: str
    unit_cost_minor: int = 0

    @property
    def value_minor(self) -> int:
        return self.on_hand_delta * self.unit_cost_minor


@dataclass
class State:
    stock: dict[tuple[str, str], StockRow] = field(default_factory=dict)
    count_versions: dict[tuple[str, str], int] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    warehouses: dict[str, str] = field(default_factory=dict)
    skus: dict[str, Sku] = field(default_factory=dict)
    replenishment: dict[str, ReplenishmentOrder] = field(default_factory=dict)
    ledger: list[Entry] = field(default_factory=list)
    unit_costs: dict[tuple[str, str], int] = field(default_factory=dict)
    buckets: dict[tuple[str, str], int] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[str, bytes | None]] = field(default_factory=dict)
    published: list[Event] = field(default_factory=list)
    reserve_calls: list[bool] = field(default_factory=list)  # `fast` of each call
    ids: int = 0

    def next_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.ids}"


class FakeStock:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _rows(self) -> dict[tuple[str, str], StockRow]:
        return self._uow.state.stock

    def _fits(self, line: Line, cap_basis_points: int) -> bool:
        row = self._rows.get(line.key)
        return (
            row is not None
            and row.sellable
            and row.reserved + line.quantity <= row.on_hand * cap_basis_points // 10_000
        )

    def _add(self, key: tuple[str, str], *, on_hand: int = 0, reserved: int = 0) -> StockRow:
        row = self._rows[key]
        self._rows[key] = replace(row, on_hand=row.on_hand + on_hand, reserved=row.reserved + reserved)
        return self._rows[key]

    async def reserve(
        self, reservation: Reservation, cap_basis_points: int, *, fast: bool = True, bucketed: bool = False
    ) -> tuple[Placement, list[StockRow]]:
        state = self._uow.state
        state.reserve_calls.append(fast)
        if any(r.order_id == reservation.order_id and r.status in LIVE for r in state.reservations.values()):
            return Placement.HELD, []
        if not all(self._fits(line, cap_basis_points) for line in reservation.lines):
            return Placement.SHORT, []
        state.reservations[reservation.reservation_id] = reservation
        await self._uow.ledger.record(
            Movement.RESERVE,
            reservation.created_at,
            ((line.sku, line.warehouse_id, 0, line.quantity) for line in reservation.lines),
            order_id=reservation.order_id,
        )
        self._uow.emit(*reservation.events)
        reservation.events.clear()
        return Placement.RESERVED, [self._add(line.key, reserved=line.quantity) for line in reservation.lines]

    async def settle(
        self, lines: Sequence[Line], *, deduct: bool, buckets: Sequence[BucketUnits] = ()
    ) -> list[StockRow]:
        return [
            self._add(line.key, on_hand=-line.quantity if deduct else 0, reserved=-line.quantity)
            for line in lines
            if line.key in self._rows
        ]

    async def move(
        self,
        reservation_id: str,
        moving: Line,
        to_warehouse: str,
        cap_basis_points: int,
        bucket: int | None = None,
    ) -> list[StockRow] | None:
        target = Line(moving.sku, to_warehouse, moving.quantity)
        if not self._fits(target, cap_basis_points):
            return None
        reserved = self._add(target.key, reserved=target.quantity)
        released = self._add(moving.key, reserved=-moving.quantity)
        reservation = self._uow.state.reservations[reservation_id]
        moved = tuple(sorted(target if line == moving else line for line in reservation.lines))
        self._uow.state.reservations[reservation_id] = replace(reservation, lines=moved)
        return [reserved, released]

    async def get(self, sku: str, warehouse_id: str) -> StockRow | None:
        return self._rows.get((sku, warehouse_id))

    async def split(self, sku: str, warehouse_id: str, buckets: int, cap_basis_points: int) -> StockRow:
        """Only the number is kept: the in-memory row has no lock to spread (Postgres's are tested)."""
        self._uow.state.buckets[(sku, warehouse_id)] = buckets
        return self._rows[(sku, warehouse_id)]

    async def buckets(self, sku: str, warehouse_id: str) -> tuple[int, list[StockBucket]]:
        return self._uow.state.buckets.get((sku, warehouse_id), 0), []

    async def lock(self, sku: str, warehouse_id: str) -> tuple[StockRow, int]:
        row = self._rows.setdefault((sku, warehouse_id), StockRow(sku, warehouse_id, 0, 0, 0, 0, True))
        return row, self._uow.state.count_versions.get((sku, warehouse_id), 0)

    async def unit_cost(self, sku: str, warehouse_id: str) -> int:
        return self._uow.state.unit_costs.get((sku, warehouse_id), 0)

    async def change_on_hand(
        self,
        sku: str,
        warehouse_id: str,
        delta: int,
        *,
        count_version: int | None = None,
        unit_cost: int | None = None,
    ) -> StockRow:
        if count_version is not None:
            self._uow.state.count_versions[(sku, warehouse_id)] = count_version
        if unit_cost is not None:
            self._uow.state.unit_costs[(sku, warehouse_id)] = unit_cost
        return self._add((sku, warehouse_id), on_hand=delta)

    async def set_levels(self, sku: str, warehouse_id: str, normal_level: int, safety_level: int) -> StockRow:
        row, _ = await self.lock(sku, warehouse_id)
        self._rows[row.key] = replace(row, normal_level=normal_level, safety_level=safety_level)
        return self._rows[row.key]

    async def pool(self, sku: str) -> StockRow:
        rows = [row for row in self._rows.values() if row.sku == sku]
        return StockRow(
            sku,
            POOL,
            sum(row.on_hand for row in rows),
            sum(row.reserved for row in rows),
            sum(row.safety_level for row in rows),
            sum(row.normal_level for row in rows),
            all(row.sellable for row in rows),
        )

    async def set_sellable(self, sku: str, warehouse_id: str, sellable: bool) -> bool:
        flipped = False
        for key, row in list(self._rows.items()):
            if row.sku == sku and warehouse_id in (POOL, row.warehouse_id) and row.sellable is not sellable:
                self._rows[key] = replace(row, sellable=sellable)
                flipped = True
        return flipped

    async def levels(
        self, skus: Sequence[str], warehouses: Sequence[str], now: datetime
    ) -> list[tuple[StockRow, int]]:
        expired: dict[tuple[str, str], int] = {}
        for reservation in self._uow.state.reservations.values():
            if reservation.expired_at(now):
                for line in reservation.lines:
                    expired[line.key] = expired.get(line.key, 0) + line.quantity
        return [
            (row, expired.get(key, 0))
            for key, row in sorted(self._rows.items())
            if row.sku in skus and (not warehouses or row.warehouse_id in warehouses)
        ]


class FakeReservations:
    def __init__(self, state: State) -> None:
        self._state = state

    async def latest(self, order_id: str, *, for_update: bool = False) -> Reservation | None:
        mine = [r for r in self._state.reservations.values() if r.order_id == order_id]
        return max(mine, key=lambda r: (r.created_at, r.reservation_id), default=None)

    async def transition(
        self,
        order_id: str,
        current: ReservationStatus,
        target: ReservationStatus,
        now: datetime,
        *,
        unexpired_at: datetime | None = None,
    ) -> Reservation | None:
        for reservation in self._state.reservations.values():
            if (
                reservation.order_id == order_id
                and reservation.status is current
                and (unexpired_at is None or reservation.expires_at > unexpired_at)
            ):
                reservation.status = target
                return reservation
        return None

    async def claim_expired(
        self, now: datetime, limit: int, keys: Sequence[tuple[str, str]] = ()
    ) -> list[Reservation]:
        due = [
            r
            for r in sorted(self._state.reservations.values(), key=lambda r: r.expires_at)
            if r.expired_at(now) and (not keys or any(line.key in keys for line in r.lines))
        ]
        return due[:limit]

    async def mark(self, reservation_ids: Sequence[str], status: ReservationStatus, now: datetime) -> None:
        for reservation_id in reservation_ids:
            self._state.reservations[reservation_id].status = status


class FakeCatalogue:
    def __init__(self, state: State) -> None:
        self._state = state

    async def put_warehouse(self, warehouse_id: str, name: str) -> None:
        self._state.warehouses[warehouse_id] = name

    async def put_sku(self, entry: SkuEntry, now: datetime) -> tuple[Sku, bool]:
        stored = self._state.skus.get(entry.sku)
        if stored is not None and stored.entry == entry:
            return stored, False
        created = stored.created_at if stored else now
        self._state.skus[entry.sku] = Sku(**vars(entry), created_at=created, updated_at=now)
        return self._state.skus[entry.sku], True

    async def sku(self, sku: str) -> Sku | None:
        return self._state.skus.get(sku)

    async def unknown(self, skus: Iterable[str], warehouses: Iterable[str]) -> tuple[set[str], set[str]]:
        return set(skus) - set(self._state.skus), set(warehouses) - set(self._state.warehouses)


class FakeReplenishment:
    def __init__(self, state: State) -> None:
        self._state = state

    async def open(self, sku: str, warehouse_id: str, suggested_quantity: int, now: datetime) -> str:
        for order in self._state.replenishment.values():
            if (order.sku, order.warehouse_id) == (sku, warehouse_id) and order.status in (
                ReplenishmentStatus.OPEN,
                ReplenishmentStatus.ORDERED,
            ):
                return order.replenishment_order_id
        order_id = self._state.next_id("repl")
        self._state.replenishment[order_id] = ReplenishmentOrder(
            order_id, sku, warehouse_id, ReplenishmentStatus.OPEN, suggested_quantity, "", now, now
        )
        return order_id

    async def close_open(self, sku: str, warehouse_id: str, note: str, now: datetime) -> None:
        for order_id, order in list(self._state.replenishment.items()):
            if (order.sku, order.warehouse_id) == (sku, warehouse_id) and order.status in (
                ReplenishmentStatus.OPEN,
                ReplenishmentStatus.ORDERED,
            ):
                self._state.replenishment[order_id] = replace(
                    order, status=ReplenishmentStatus.CLOSED, note=note, updated_at=now
                )

    async def lock(self, replenishment_order_id: str) -> ReplenishmentOrder | None:
        return self._state.replenishment.get(replenishment_order_id)

    async def update(
        self, replenishment_order_id: str, status: ReplenishmentStatus, note: str, now: datetime
    ) -> ReplenishmentOrder:
        order = replace(
            self._state.replenishment[replenishment_order_id], status=status, note=note, updated_at=now
        )
        self._state.replenishment[replenishment_order_id] = order
        return order


class FakeLedger:
    def __init__(self, state: State) -> None:
        self._state = state

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
    ) -> None:
        moved = list(moves)
        costs = list(unit_costs) if unit_costs is not None else [None] * len(moved)
        self._state.ledger.extend(
            Entry(
                kind,
                sku,
                warehouse,
                on_hand,
                reserved,
                order_id,
                reference,
                reason,
                0
                if on_hand == 0
                else cost
                if cost is not None
                else self._state.unit_costs.get((sku, warehouse), 0),
            )
            for (sku, warehouse, on_hand, reserved), cost in zip(moved, costs, strict=True)
        )

    async def sale_costs(self, order_id: str, skus: Sequence[str]) -> dict[str, int]:
        return {
            e.sku: e.unit_cost_minor
            for e in self._state.ledger
            if e.order_id == order_id and e.kind is Movement.COMMIT and e.sku in skus
        }

    async def audit(self) -> list[StockAudit]:
        audits = []
        for key, row in sorted(self._state.stock.items()):
            entries = [e for e in self._state.ledger if (e.sku, e.warehouse_id) == key]
            held = sum(
                line.quantity
                for r in self._state.reservations.values()
                if r.status is ReservationStatus.ACTIVE
                for line in r.lines
                if line.key == key
            )
            audits.append(
                StockAudit(
                    row.sku,
                    row.warehouse_id,
                    row.on_hand,
                    sum(e.on_hand_delta for e in entries),
                    row.reserved,
                    sum(e.reserved_delta for e in entries),
                    held,
                )
            )
        return audits


class FakeIdempotency:
    def __init__(self, state: State) -> None:
        self._state = state

    async def claim(self, scope: str, key: str, digest: str, owner: str) -> bytes | None:
        scope = f"{scope}@{owner}"
        first = self._state.keys.get((scope, key))
        if first is None:
            self._state.keys[(scope, key)] = (digest, None)
            return None
        if first[0] != digest:
            raise InvalidArgument("idempotency_key", "was already used for a different request")
        return first[1] or b""

    async def complete(self, scope: str, key: str, response: bytes, owner: str) -> None:
        scope = f"{scope}@{owner}"
        digest, _ = self._state.keys[(scope, key)]
        self._state.keys[(scope, key)] = (digest, response)


class FakeUnitOfWork(SnapshotUnitOfWork[State]):
    kept_on_rollback = ("reserve_calls",)  # what the test observed of the calls stays

    def __init__(self, inventory: FakeInventory) -> None:
        self.clock = inventory.clock
        super().__init__(inventory.state)

    def bind(self, state: State) -> None:
        self.stock = FakeStock(self)
        self.reservations = FakeReservations(state)
        self.catalogue = FakeCatalogue(state)
        self.replenishment = FakeReplenishment(state)
        self.ledger = FakeLedger(state)
        self.idempotency = FakeIdempotency(state)


class FakeInventory:
    """Stock, catalogue and reservations in memory, and a clock the test moves."""

    def __init__(self) -> None:
        self.state = State()
        self.clock = FixedClock(datetime(2026, 11, 21, 8, tzinfo=UTC))

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def stock(self, warehouse_id: str, sku: str, on_hand: int, *, safety_level: int = 0) -> None:
        self.state.warehouses.setdefault(warehouse_id, warehouse_id)
        now = self.clock.now()
        self.state.skus.setdefault(sku, Sku(sku=sku, title=sku, created_at=now, updated_at=now))
        self.state.stock[(sku, warehouse_id)] = StockRow(sku, warehouse_id, on_hand, 0, safety_level, 0, True)
        self.state.ledger.append(Entry(Movement.RECEIPT, sku, warehouse_id, on_hand, 0, "", "seed", ""))

    def row(self, sku: str, warehouse_id: str) -> tuple[int, int, bool]:
        row = self.state.stock[(sku, warehouse_id)]
        return row.on_hand, row.reserved, row.sellable

    def published(self, kind: type[E]) -> list[E]:
        return [event for event in self.state.published if isinstance(event, kind)]
