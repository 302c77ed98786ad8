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


@dataclass(frozen=True)
class AlertRaised:
    """Something in stock needs a person (on `oms.alerts.raised`): a row below its safety level, the
    numbers disagreeing with the ledger. Severity as oms.alerts.v1 numbers it (2 medium … 4 critical)."""

    kind: str
    severity: int
    message: str
    dedupe_key: str
    # who is expected to act; empty: operations
    roles: tuple[str, ...] = ()


MEDIUM, CRITICAL = 2, 4


def low_stock_alert(event: LowStock) -> AlertRaised:
    return AlertRaised(
        "low_stock",
        MEDIUM,
        f"{event.sku} at {event.warehouse_id}: {event.sellable_units} sellable, below its safety level "
        f"{event.safety_level}; replenishment {event.replenishment_order_id} opened",
        f"inventory:low_stock:{event.sku}:{event.warehouse_id}",
        ("warehouse_supervisor",),
    )


def invariant_alert(event: InvariantBreached) -> AlertRaised:
    rows = ", ".join(f"{audit.sku}@{audit.warehouse_id}" for audit in event.breaches[:5])
    more = f" and {len(event.breaches) - 5} more" if len(event.breaches) > 5 else ""
    return AlertRaised(
        "inventory_invariant_breached",
        CRITICAL,
        f"stock disagrees with the ledger or open reservations on {len(event.breaches)} rows: {rows}{more}",
        # one open alert while the check keeps finding breaches, however the rows change
        "inventory:invariant_breached",
    )


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
    | AlertRaised
)
