"""Reference data: warehouses, the SKU catalogue and each row's stock policy."""

from __future__ import annotations

from services.inventory.domain.events import SkuUpdated
from services.inventory.domain.model import (
    GoodsType,
    Sku,
    StockRow,
    check_quantity,
    check_reference,
    default_safety_level,
    sku_entry,
)
from services.inventory.domain.policy import Policy
from services.inventory.handlers.movements import known
from services.inventory.handlers.ports import UnitOfWork
from services.inventory.handlers.safety import apply_signals
from services.kit.errors import NotFound


async def put_warehouse(uow: UnitOfWork, warehouse_id: str, name: str) -> None:
    check_reference("warehouse_id", warehouse_id)
    async with uow:
        await uow.catalogue.put_warehouse(warehouse_id, name or warehouse_id)
        await uow.commit()


async def put_sku(
    uow: UnitOfWork,
    sku: str,
    title: str,
    goods_type: GoodsType = GoodsType.NORMAL,
    category: str = "",
    weight_g: int = 0,
    customised: bool = False,
) -> Sku:
    """The whole entry is replaced (PUT); a repeat leaves it, and its `updated_at`, as they were."""
    entry = sku_entry(sku, title, goods_type, category, weight_g, customised)
    async with uow:
        stored, changed = await uow.catalogue.put_sku(entry, uow.clock.now())
        if changed:  # a repeat announces nothing
            uow.emit(SkuUpdated(stored))
        await uow.commit()
    return stored


async def get_sku(uow: UnitOfWork, sku: str) -> Sku:
    check_reference("sku", sku)
    async with uow:
        stored = await uow.catalogue.sku(sku)
    if stored is None:
        raise NotFound(f"unknown SKU {sku}")
    return stored


async def set_stock_policy(
    uow: UnitOfWork, policy: Policy, warehouse_id: str, sku: str, normal_level: int, safety_level: int
) -> StockRow:
    check_quantity("normal_level", normal_level, allow_zero=True)
    check_quantity("safety_level", safety_level, allow_zero=True)
    async with uow:
        await known(uow, [sku], warehouse_id)
        safety = safety_level or default_safety_level(normal_level, policy.safety_percent)
        [row] = await apply_signals(
            policy, uow, [await uow.stock.set_levels(sku, warehouse_id, normal_level, safety)]
        )
        await uow.commit()
    return row
