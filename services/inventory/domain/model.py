"""Stock rules: what may be reserved, when stock is low, which counts apply, how reservations move."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum

from services.inventory.domain.events import Event, StockReserved
from services.kit.errors import FailedPrecondition, InvalidArgument

MAX_QUANTITY = 1_000_000
MAX_LINES = 200
# one unit of up to a tonne: heavier is a typo in grams, not a product
MAX_WEIGHT_G = 1_000_000
MAX_TITLE = 200
POOL = ""  # the warehouse id that stands for all of a SKU's warehouses
MAX_BUCKETS = 64
_REFERENCE = re.compile(r"^[\w.\-:/#]{1,64}$")
# later rules (SLA timers, risk) key on categories: keep them to readable names, any script
_CATEGORY = re.compile(r"^[\w\-/&. ]{0,64}$")


class GoodsType(StrEnum):
    NORMAL = "normal"
    FRESH = "fresh"
    COLD_CHAIN = "cold_chain"


@dataclass(frozen=True)
class SkuEntry:
    """A SKU's catalogue entry: what routing, SLA timers, risk and after-sales rules need to know."""

    sku: str
    title: str
    goods_type: GoodsType = GoodsType.NORMAL
    category: str = ""
    weight_g: int = 0
    customised: bool = False


# what a PUT replaces (every field of an entry but its code)
CATALOGUE_FIELDS = tuple(entry_field.name for entry_field in fields(SkuEntry) if entry_field.name != "sku")


def sku_entry(
    sku: str,
    title: str,
    goods_type: GoodsType = GoodsType.NORMAL,
    category: str = "",
    weight_g: int = 0,
    customised: bool = False,
) -> SkuEntry:
    """A valid entry, or InvalidArgument naming the field; an empty title takes the SKU code."""
    check_reference("sku", sku)
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise InvalidArgument("title", f"at most {MAX_TITLE} characters")
    category = category.strip()
    if not _CATEGORY.match(category):
        raise InvalidArgument("category", "must be at most 64 letters, digits, spaces or - _ / & .")
    if not 0 <= weight_g <= MAX_WEIGHT_G:
        raise InvalidArgument("weight_g", f"must be between 0 and {MAX_WEIGHT_G} grams")
    return SkuEntry(sku, title or sku, goods_type, category, weight_g, customised)


@dataclass(frozen=True, kw_only=True)
class Sku(SkuEntry):
    """A catalogue entry as stored, with when it was first and last written."""

    created_at: datetime
    updated_at: datetime

    @property
    def entry(self) -> SkuEntry:
        return SkuEntry(**{name: getattr(self, name) for name in CATALOGUE_FIELDS}, sku=self.sku)


class ReservationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class ReplenishmentStatus(StrEnum):
    OPEN = "OPEN"
    ORDERED = "ORDERED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


REPLENISHMENT_TRANSITIONS: dict[ReplenishmentStatus, frozenset[ReplenishmentStatus]] = {
    ReplenishmentStatus.OPEN: frozenset(
        {ReplenishmentStatus.ORDERED, ReplenishmentStatus.CLOSED, ReplenishmentStatus.CANCELLED}
    ),
    ReplenishmentStatus.ORDERED: frozenset({ReplenishmentStatus.CLOSED, ReplenishmentStatus.CANCELLED}),
    ReplenishmentStatus.CLOSED: frozenset(),
    ReplenishmentStatus.CANCELLED: frozenset(),
}


class Movement(StrEnum):
    RESERVE = "reserve"
    COMMIT = "commit"
    RELEASE = "release"
    EXPIRE = "expire"
    MOVE_OUT = "move_out"
    MOVE_IN = "move_in"
    RECEIPT = "receipt"
    COUNT = "count"
    ADJUST = "adjust"
    RESTOCK = "restock"


@dataclass(frozen=True, order=True)
class Line:
    sku: str
    warehouse_id: str
    quantity: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.sku, self.warehouse_id)


@dataclass
class Reservation:
    """An order's hold on stock. A new one records the event that announces it (`events`)."""

    reservation_id: str
    order_id: str
    status: ReservationStatus
    expires_at: datetime
    created_at: datetime
    lines: tuple[Line, ...]
    events: list[Event] = field(default_factory=list, compare=False, repr=False)
    # the stock bucket each line taken from one came from, by (sku, warehouse)
    buckets: dict[tuple[str, str], int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def place(
        cls, reservation_id: str, order_id: str, lines: tuple[Line, ...], expires_at: datetime, now: datetime
    ) -> Reservation:
        reservation = cls(reservation_id, order_id, ReservationStatus.ACTIVE, expires_at, now, lines)
        reservation.events.append(StockReserved(order_id, reservation_id, lines, expires_at))
        return reservation

    def expired_at(self, now: datetime) -> bool:
        """Active but past its time: it no longer holds stock, whether or not the sweep has run."""
        return self.status is ReservationStatus.ACTIVE and self.expires_at <= now

    def holds_at(self, now: datetime) -> bool:
        """Committed, or active and within its time: the order holds this stock (a repeat gets it)."""
        return self.status is ReservationStatus.COMMITTED or (
            self.status is ReservationStatus.ACTIVE and not self.expired_at(now)
        )


class Placement(StrEnum):
    """What writing a new reservation came to."""

    RESERVED = "reserved"
    HELD = "held"  # the order already holds a live reservation; nothing was written
    SHORT = "short"  # a line did not fit; nothing was written
    # a line did not fit and no hold past its time sits on its row (nothing to free first); nothing written
    SOLD_OUT = "sold_out"
    BUCKETED = (
        "bucketed"  # a line's row is split into buckets, taken one reservation at a time; nothing written
    )


class ShortageReason(StrEnum):
    NO_STOCK_RECORD = "no_stock_record"
    NOT_SELLABLE = "not_sellable"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class Shortage:
    sku: str
    warehouse_id: str
    requested: int
    available: int
    reason: ShortageReason


@dataclass
class ReserveOutcome:
    reserved: bool
    reservation: Reservation | None = None
    lines: tuple[Line, ...] = ()
    shortages: list[Shortage] = field(default_factory=list)


@dataclass(frozen=True)
class StockRow:
    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    safety_level: int
    normal_level: int
    sellable: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.sku, self.warehouse_id)

    @property
    def sellable_units(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class StockLevel:
    """A row as callers see it: reserved without expired holds, and what a new reservation may take."""

    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    available: int
    safety_level: int
    normal_level: int
    sellable: bool


def stock_level(row: StockRow, cap_basis_points: int, expired_units: int = 0) -> StockLevel:
    reserved = row.reserved - expired_units
    return StockLevel(
        sku=row.sku,
        warehouse_id=row.warehouse_id,
        on_hand=row.on_hand,
        reserved=reserved,
        available=reservable(row.on_hand, reserved, cap_basis_points, row.sellable),
        safety_level=row.safety_level,
        normal_level=row.normal_level,
        sellable=row.sellable,
    )


def shortage(line: Line, level: StockLevel | None) -> Shortage | None:
    """Why a line cannot be reserved now, or None when it could."""
    if level is None:
        return Shortage(line.sku, line.warehouse_id, line.quantity, 0, ShortageReason.NO_STOCK_RECORD)
    if not level.sellable:
        return Shortage(line.sku, line.warehouse_id, line.quantity, 0, ShortageReason.NOT_SELLABLE)
    if level.available < line.quantity:
        return Shortage(
            line.sku, line.warehouse_id, line.quantity, level.available, ShortageReason.INSUFFICIENT
        )
    return None


@dataclass(frozen=True)
class SkuAvailability:
    sku: str
    pool_available: int
    pool_on_hand: int
    warehouses: list[StockLevel]
    catalogue: Sku


@dataclass(frozen=True)
class ReplenishmentOrder:
    replenishment_order_id: str
    sku: str
    warehouse_id: str
    status: ReplenishmentStatus
    suggested_quantity: int
    note: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: int
    at: datetime
    sku: str
    warehouse_id: str
    kind: Movement
    on_hand_delta: int
    reserved_delta: int
    order_id: str
    reference: str
    reason: str
    trace_id: str
    # what the movement was worth at cost: on_hand_delta × unit_cost_minor (minor units; a shipment's
    # commit is negative, its return's restock gives back exactly what it took)
    unit_cost_minor: int = 0
    value_minor: int = 0


def average_cost(on_hand: int, unit_cost: int, units: int, cost: int) -> int:
    """A row's moving average unit cost (minor units) after `units` come in at `cost` each: the value on
    hand over the units on hand, rounded half up. Units leaving (orders shipped, shrinkage) leave the
    average as it is; a row with nothing on hand takes the new units' cost."""
    if units <= 0:
        return unit_cost
    if on_hand <= 0:
        return cost
    total_units = on_hand + units
    return (on_hand * unit_cost + units * cost + total_units // 2) // total_units


MAX_UNIT_COST = 10**12  # minor units: ten billion yuan a unit is no one's goods


def check_unit_cost(field: str, cost: int) -> None:
    if not 0 <= cost <= MAX_UNIT_COST:
        raise InvalidArgument(field, f"must be between 0 and {MAX_UNIT_COST} minor units, got {cost}")


@dataclass(frozen=True)
class StockAudit:
    """A row's numbers beside what the ledger and the open reservations say they should be."""

    sku: str
    warehouse_id: str
    on_hand: int
    ledger_on_hand: int
    reserved: int  # held for orders: the row's reserved less its buckets' free units
    ledger_reserved: int
    open_reservation_units: int
    bucket_used_units: int = 0
    open_bucket_units: int = 0  # what the open reservations' lines took from buckets

    @property
    def breached(self) -> bool:
        return (
            (self.on_hand, self.reserved) != (self.ledger_on_hand, self.ledger_reserved)
            or self.reserved != self.open_reservation_units
            or self.bucket_used_units != self.open_bucket_units
        )


def check_reference(field: str, value: str) -> str:
    if not _REFERENCE.match(value):
        raise InvalidArgument(field, "must be 1-64 letters, digits or . - _ : / #")
    return value


def check_quantity(field: str, quantity: int, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= quantity <= MAX_QUANTITY:
        raise InvalidArgument(field, f"must be between {low} and {MAX_QUANTITY}")
    return quantity


def reservation_lines(lines: list[Line]) -> tuple[Line, ...]:
    """Validate an order's lines; return them in (sku, warehouse) order, the order rows are locked in."""
    if not lines:
        raise InvalidArgument("lines", "a reservation needs at least one line")
    if len(lines) > MAX_LINES:
        raise InvalidArgument("lines", f"at most {MAX_LINES} lines")
    seen: set[tuple[str, str]] = set()
    for index, line in enumerate(lines):
        check_reference(f"lines[{index}].sku", line.sku)
        check_reference(f"lines[{index}].warehouse_id", line.warehouse_id)
        check_quantity(f"lines[{index}].quantity", line.quantity)
        if line.key in seen:
            raise InvalidArgument(f"lines[{index}]", "duplicates an earlier line's SKU and warehouse")
        seen.add(line.key)
    return tuple(sorted(lines))


def reservable(on_hand: int, reserved: int, cap_basis_points: int, sellable: bool = True) -> int:
    """Units a new reservation may take: under the cap (a share of on hand), never negative."""
    if not sellable:
        return 0
    return max(0, on_hand * cap_basis_points // 10_000 - reserved)


@dataclass(frozen=True, order=True)
class BucketUnits:
    """Units that reservation lines took from one stock bucket."""

    sku: str
    warehouse_id: str
    bucket: int
    quantity: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.sku, self.warehouse_id)


@dataclass(frozen=True)
class StockBucket:
    bucket: int
    allotted: int
    used: int

    @property
    def free(self) -> int:
        return self.allotted - self.used


@dataclass(frozen=True)
class StockSplit:
    """A row and its buckets: `buckets` of them take allotments (0: not split); `parts` are every bucket,
    including those that only still hold units of open reservations."""

    row: StockRow
    buckets: int
    parts: tuple[StockBucket, ...]


def bucket_units(reservations: Iterable[Reservation]) -> list[BucketUnits]:
    """What the reservations' lines took from buckets, one entry per bucket, in lock order."""
    totals: dict[tuple[str, str, int], int] = {}
    for reservation in reservations:
        for line in reservation.lines:
            bucket = reservation.buckets.get(line.key)
            if bucket is not None:
                at = (line.sku, line.warehouse_id, bucket)
                totals[at] = totals.get(at, 0) + line.quantity
    return [BucketUnits(*at, quantity) for at, quantity in sorted(totals.items())]


def check_buckets(buckets: int) -> int:
    """How many buckets a row is split into: 0 or 1 is not split (0)."""
    if not 0 <= buckets <= MAX_BUCKETS:
        raise InvalidArgument("buckets", f"must be between 0 and {MAX_BUCKETS}, got {buckets}")
    return 0 if buckets == 1 else buckets


def bucket_hash(order_id: str) -> int:
    """Where an order starts among a split row's buckets (the hash modulo their number): orders spread
    evenly, and a repeat of an order starts where it did."""
    return zlib.crc32(order_id.encode())


def first_bucket(order_id: str, buckets: int) -> int:
    return bucket_hash(order_id) % buckets


def allotment_room(
    on_hand: int, reserved: int, safety_level: int, sellable: bool, cap_basis_points: int
) -> int:
    """Units a row may allot to its buckets: what one reservation could take from it, never under the
    safety level (a reservation that would cross it goes through the row, which then stops selling)."""
    room = reservable(on_hand, reserved, cap_basis_points, sellable)
    if safety_level > 0:
        room = min(room, max(0, on_hand - reserved - safety_level))
    return room


def refill_size(room: int, buckets: int, quantity: int) -> int:
    """A dry bucket's new allotment: its share of the row's room, at least the line's quantity, at most
    the room; 0 when the room cannot cover the line."""
    if buckets < 1 or room < quantity:
        return 0
    return min(room, max(quantity, -(-room // buckets)))


def split_evenly(units: int, buckets: int) -> list[int]:
    """Units shared among buckets, the first ones taking one more when they do not divide evenly."""
    share, extra = divmod(units, buckets)
    return [share + (1 if bucket < extra else 0) for bucket in range(buckets)]


def default_safety_level(normal_level: int, safety_percent: int) -> int:
    return normal_level * safety_percent // 100


class StockSignal(StrEnum):
    LOW = "low"
    RECOVERED = "recovered"


def low_stock_signal(row: StockRow) -> StockSignal | None:
    """Below the safety level a row stops selling; at or above it, it sells again."""
    if row.sellable and row.safety_level > 0 and row.sellable_units < row.safety_level:
        return StockSignal.LOW
    if not row.sellable and row.sellable_units >= row.safety_level:
        return StockSignal.RECOVERED
    return None


def replenishment_quantity(row: StockRow) -> int:
    return max(row.normal_level - row.sellable_units, row.safety_level - row.sellable_units, 1)


@dataclass(frozen=True)
class CountDecision:
    apply: bool
    delta: int


def decide_count(
    current_version: int, current_on_hand: int, reserved: int, version: int, count: int
) -> CountDecision:
    """An older or repeated count is ignored; a count below what open orders hold is refused."""
    if version <= current_version:
        return CountDecision(apply=False, delta=0)
    if count < reserved:
        raise FailedPrecondition(
            f"count {count} is below the {reserved} units reserved for open orders; "
            "release or move those reservations first"
        )
    return CountDecision(apply=True, delta=count - current_on_hand)


def check_replenishment_transition(current: ReplenishmentStatus, target: ReplenishmentStatus) -> None:
    if target not in REPLENISHMENT_TRANSITIONS[current]:
        raise FailedPrecondition(f"a {current.value} replenishment order cannot become {target.value}")
