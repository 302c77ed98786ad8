"""Hot-SKU stock buckets: a row whose one lock limits its reservations is split into sub-rows."""

from __future__ import annotations

from services.inventory.domain.model import StockSplit, check_buckets, check_reference
from services.inventory.domain.policy import LowStockScope, Policy
from services.inventory.handlers.movements import known
from services.inventory.handlers.ports import UnitOfWork
from services.kit.errors import FailedPrecondition, NotFound


async def set_stock_buckets(
    uow: UnitOfWork, policy: Policy, warehouse_id: str, sku: str, buckets: int
) -> StockSplit:
    """Split a row into `buckets` (0 or 1: no longer split); a repeat changes nothing. A new number
    takes every bucket's free units back into the row and shares the row's room among the new ones."""
    check_reference("warehouse_id", warehouse_id)
    check_reference("sku", sku)
    count = check_buckets(buckets)
    if count and policy.low_stock_scope == LowStockScope.POOL:
        raise FailedPrecondition(
            "stock buckets need LOW_STOCK_SCOPE=warehouse: in pool scope reservations go through the rows"
        )
    async with uow:
        await known(uow, [sku], warehouse_id)
        if await uow.stock.get(sku, warehouse_id) is None:
            raise NotFound(f"no stock of {sku} at {warehouse_id}")
        row, _ = await uow.stock.lock(sku, warehouse_id)
        current, _ = await uow.stock.buckets(sku, warehouse_id)
        if current != count:
            row = await uow.stock.split(sku, warehouse_id, count, policy.cap_basis_points)
        current, parts = await uow.stock.buckets(sku, warehouse_id)
        await uow.commit()
    return StockSplit(row, current, tuple(parts))
