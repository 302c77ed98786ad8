"""What inventory announces, as domain facts; mappers turn each into its integration event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.inventory.domain.model import Line, Movement, Sku, StockAudit


@dataclass(frozen=True)
class SkuUpdated:
    sku: Sku


@dataclass(frozen=True)
class StockReserved:
    order_id: str
    reservation_id: str
    lines: tuple[Line, ...]
    expires_at: datetime


@dataclass(frozen=True)
class ReservationCommitted:
    order_id: str
    reservation_id: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class ReservationReleased:
    order_id: str
    reservation_id: str
    lines: tuple[Line, ...]
    reason: str


@dataclass(frozen=True)
class ReservationExpired:
    order_id: str
    reservation_id: str
    lines: tuple[Line, ...]
    expired_at: datetime


@dataclass(frozen=True)
class StockAdjusted:
    sku: str
    warehouse_id: str
    kind: Movement
    on_hand_delta: int
    on_hand: int
    reference: str
    reason: str


@dataclass(frozen=True)
class LowStock:
    sku: str
    warehouse_id: str
    sellable_units: int
    safety_level: int
    replenishment_order_id: str


@dataclass(frozen=True)
class BackInStock:
    sku: str
    warehouse_id: str
    sellable_units: int


@dataclass(frozen=True)
class InvariantBreached:
    breaches: tuple[StockAudit, ...]


Event = (
    SkuUpdated
    | StockReserved
    | ReservationCommitted
    | ReservationReleased
    | ReservationExpired
    | StockAdjusted
    | LowStock
    | BackInStock
    | InvariantBreached
)
