"""Paged lists, newest or alphabetical first, with the key of the last row as the next page's token."""

from __future__ import annotations

from sqlalchemy import and_, select

from services.inventory.domain.model import (
    GoodsType,
    LedgerEntry,
    Movement,
    ReplenishmentOrder,
    ReplenishmentStatus,
    Sku,
)
from services.inventory.store import InventoryUnitOfWork
from services.inventory.store.catalogue import sku_of
from services.inventory.store.replenishment import replenishment_of
from services.inventory.store.tables import ledger_table, replenishment_table, skus_table
from services.kit.errors import InvalidArgument

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page.page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


async def list_skus(
    uow: InventoryUnitOfWork, goods_type: GoodsType | None, category: str, page_size: int, page_token: str
) -> tuple[list[Sku], str]:
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    query = select(skus_table).order_by(skus_table.c.sku).limit(size + 1)
    if goods_type is not None:
        query = query.where(skus_table.c.goods_type == goods_type.value)
    if category:
        query = query.where(skus_table.c.category == category)
    if page_token:
        query = query.where(skus_table.c.sku > page_token)
    async with uow:
        rows = [sku_of(row) for row in await (await uow.connection()).execute(query)]
    return rows[:size], rows[size - 1].sku if len(rows) > size else ""


async def list_replenishment_orders(
    uow: InventoryUnitOfWork, status: ReplenishmentStatus | None, sku: str, page_size: int, page_token: str
) -> tuple[list[ReplenishmentOrder], str]:
    size = _page_size(page_size)
    query = (
        select(replenishment_table)
        .order_by(replenishment_table.c.replenishment_order_id.desc())
        .limit(size + 1)
    )
    if status is not None:
        query = query.where(replenishment_table.c.status == status.value)
    if sku:
        query = query.where(replenishment_table.c.sku == sku)
    if page_token:
        query = query.where(replenishment_table.c.replenishment_order_id < page_token)
    async with uow:
        rows = [replenishment_of(row) for row in await (await uow.connection()).execute(query)]
    return rows[:size], rows[size - 1].replenishment_order_id if len(rows) > size else ""


async def list_ledger(
    uow: InventoryUnitOfWork, sku: str, warehouse_id: str, order_id: str, page_size: int, page_token: str
) -> tuple[list[LedgerEntry], str]:
    size = _page_size(page_size)
    query = select(ledger_table).order_by(ledger_table.c.entry_id.desc()).limit(size + 1)
    conditions = []
    if sku:
        conditions.append(ledger_table.c.sku == sku)
    if warehouse_id:
        conditions.append(ledger_table.c.warehouse_id == warehouse_id)
    if order_id:
        conditions.append(ledger_table.c.order_id == order_id)
    if page_token:
        if not page_token.isdigit():
            raise InvalidArgument("page.page_token", "is not a token this API returned")
        conditions.append(ledger_table.c.entry_id < int(page_token))
    if conditions:
        query = query.where(and_(*conditions))
    async with uow:
        rows = [
            LedgerEntry(
                entry_id=row.entry_id,
                at=row.at,
                sku=row.sku,
                warehouse_id=row.warehouse_id,
                kind=Movement(row.kind),
                on_hand_delta=row.on_hand_delta,
                reserved_delta=row.reserved_delta,
                order_id=row.order_id,
                reference=row.reference,
                reason=row.reason,
                trace_id=row.trace_id,
                unit_cost_minor=row.unit_cost_minor,
                value_minor=row.value_minor,
            )
            for row in await (await uow.connection()).execute(query)
        ]
    return rows[:size], str(rows[size - 1].entry_id) if len(rows) > size else ""
