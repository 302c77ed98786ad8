"""Safety stock: a row below its safety level stops selling and opens a work order; back above, it sells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from services.inventory.domain.events import BackInStock, LowStock, low_stock_alert
from services.inventory.domain.model import (
    ReplenishmentOrder,
    ReplenishmentStatus,
    StockRow,
    StockSignal,
    check_replenishment_transition,
    low_stock_signal,
    replenishment_quantity,
)
from services.inventory.domain.policy import LowStockScope, Policy
from services.inventory.handlers.ports import UnitOfWork
from services.kit.errors import NotFound

MAX_NOTE = 500


async def apply_signals(policy: Policy, uow: UnitOfWork, rows: Sequence[StockRow]) -> list[StockRow]:
    """Rows crossing their safety level flip sellable, with an event and a replenishment work order.

    In pool scope the sums over all of a SKU's warehouses decide, and all its rows flip together.
    """
    if policy.low_stock_scope == LowStockScope.POOL:
        pools = [await uow.stock.pool(sku) for sku in sorted({row.sku for row in rows})]
        await apply_signals(replace(policy, low_stock_scope=LowStockScope.WAREHOUSE), uow, pools)
        return [await uow.stock.get(row.sku, row.warehouse_id) or row for row in rows]
    result = []
    for row in rows:
        signal = low_stock_signal(row)
        if signal is StockSignal.LOW and await uow.stock.set_sellable(row.sku, row.warehouse_id, False):
            order_id = await uow.replenishment.open(
                row.sku, row.warehouse_id, replenishment_quantity(row), uow.clock.now()
            )
            low = LowStock(row.sku, row.warehouse_id, row.sellable_units, row.safety_level, order_id)
            uow.emit(low, low_stock_alert(low))
            row = replace(row, sellable=False)
        elif signal is StockSignal.RECOVERED and await uow.stock.set_sellable(
            row.sku, row.warehouse_id, True
        ):
            await uow.replenishment.close_open(row.sku, row.warehouse_id, "stock recovered", uow.clock.now())
            uow.emit(BackInStock(row.sku, row.warehouse_id, row.sellable_units))
            row = replace(row, sellable=True)
        result.append(row)
    return result


async def update_replenishment_order(
    uow: UnitOfWork, replenishment_order_id: str, status: ReplenishmentStatus, note: str
) -> ReplenishmentOrder:
    async with uow:
        order = await uow.replenishment.lock(replenishment_order_id)
        if order is None:
            raise NotFound(f"replenishment order {replenishment_order_id} not found")
        check_replenishment_transition(order.status, status)
        updated = await uow.replenishment.update(
            replenishment_order_id, status, note[:MAX_NOTE] or order.note, uow.clock.now()
        )
        await uow.commit()
    return updated
