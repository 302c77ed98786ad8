"""Stock rules: what may be reserved, when stock is low, which counts apply, how reservations move."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.kit.errors import FailedPrecondition, InvalidArgument

MAX_QUANTITY = 1_000_000
MAX_LINES = 200
# one unit of up to a tonne: heavier is a typo in grams, not a product
MAX_WEIGHT_G = 1_000_000
MAX_TITLE = 200
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


@dataclass(frozen=True)
class ReservationRecord:
    reservation_id: str
    order_id: str
    status: str
    expires_at: datetime
    created_at: datetime


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
    def sellable_units(self) -> int:
        return self.on_hand - self.reserved


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
