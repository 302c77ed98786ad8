"""What may be reserved where, on every order's routing: one statement for levels, one for the catalogue."""

from __future__ import annotations

from collections import defaultdict

from services.inventory.domain.model import SkuAvailability, StockLevel, check_reference, stock_level
from services.inventory.domain.policy import Policy
from services.inventory.store import InventoryUnitOfWork
from services.kit.errors import InvalidArgument

MAX_SKUS = 1000


async def availability(
    uow: InventoryUnitOfWork, policy: Policy, skus: list[str], warehouses: list[str]
) -> list[SkuAvailability]:
    """Expired reservations stop counting here at once, before the sweeper releases them."""
    if not skus:
        raise InvalidArgument("skus", "name at least one SKU")
    if len(skus) > MAX_SKUS:
        raise InvalidArgument("skus", f"at most {MAX_SKUS} SKUs per query")
    for index, sku in enumerate(skus):
        check_reference(f"skus[{index}]", sku)
    for index, warehouse in enumerate(warehouses):
        check_reference(f"warehouse_ids[{index}]", warehouse)
    async with uow:
        rows = await uow.stock.levels(skus, warehouses, uow.clock.now())
        catalogue = await uow.catalogue.skus(skus)
    for index, sku in enumerate(skus):
        if sku not in catalogue:
            raise InvalidArgument(f"skus[{index}]", f"unknown SKU {sku}")
    by_sku: dict[str, list[StockLevel]] = defaultdict(list)
    for row, expired in rows:
        by_sku[row.sku].append(stock_level(row, policy.cap_basis_points, expired))
    return [
        SkuAvailability(
            sku=sku,
            pool_available=sum(level.available for level in by_sku[sku]),
            pool_on_hand=sum(level.on_hand for level in by_sku[sku]),
            warehouses=by_sku[sku],
            catalogue=catalogue[sku],
        )
        for sku in skus
    ]
