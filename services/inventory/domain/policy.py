"""How this deployment runs its stock: reservation time, the cap, safety stock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class LowStockScope(StrEnum):
    """Each SKU × warehouse row against its own safety level, or a SKU's sums over its warehouses."""

    WAREHOUSE = "warehouse"
    POOL = "pool"


@dataclass(frozen=True)
class Policy:
    reservation_ttl: timedelta = timedelta(minutes=15)
    cap_basis_points: int = 9_500
    safety_percent: int = 30
    sweep_batch: int = 200
    low_stock_scope: LowStockScope = LowStockScope.WAREHOUSE
