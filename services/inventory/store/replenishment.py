"""Replenishment work orders: at most one open (OPEN or ORDERED) per SKU × warehouse row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert

from services.inventory.domain.model import ReplenishmentOrder, ReplenishmentStatus
from services.inventory.store.connection import Connect
from services.inventory.store.tables import replenishment_table
from services.kit.ids import new_id

_OPEN = [ReplenishmentStatus.OPEN.value, ReplenishmentStatus.ORDERED.value]


def replenishment_of(row: Any) -> ReplenishmentOrder:
    return ReplenishmentOrder(
        replenishment_order_id=row.replenishment_order_id,
        sku=row.sku,
        warehouse_id=row.warehouse_id,
        status=ReplenishmentStatus(row.status),
        suggested_quantity=row.suggested_quantity,
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ReplenishmentRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def open(self, sku: str, warehouse_id: str, suggested_quantity: int, now: datetime) -> str:
        """The row's open work order: a new one, or the one already open."""
        conn = await self._connect()
        inserted = await conn.execute(
            insert(replenishment_table)
            .values(
                replenishment_order_id=new_id(),
                sku=sku,
                warehouse_id=warehouse_id,
                status=ReplenishmentStatus.OPEN.value,
                suggested_quantity=suggested_quantity,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["sku", "warehouse_id"], index_where=text("status IN ('OPEN', 'ORDERED')")
            )
            .returning(replenishment_table.c.replenishment_order_id)
        )
        created = inserted.scalar()
        if created is not None:
            return str(created)
        existing = await conn.scalar(
            select(replenishment_table.c.replenishment_order_id).where(
                replenishment_table.c.sku == sku,
                replenishment_table.c.warehouse_id == warehouse_id,
                replenishment_table.c.status.in_(_OPEN),
            )
        )
        return str(existing)

    async def close_open(self, sku: str, warehouse_id: str, note: str, now: datetime) -> None:
        conn = await self._connect()
        await conn.execute(
            update(replenishment_table)
            .where(
                replenishment_table.c.sku == sku,
                replenishment_table.c.warehouse_id == warehouse_id,
                replenishment_table.c.status.in_(_OPEN),
            )
            .values(status=ReplenishmentStatus.CLOSED.value, note=note, updated_at=now)
        )

    async def lock(self, replenishment_order_id: str) -> ReplenishmentOrder | None:
        conn = await self._connect()
        row = (
            await conn.execute(
                select(replenishment_table)
                .where(replenishment_table.c.replenishment_order_id == replenishment_order_id)
                .with_for_update()
            )
        ).first()
        return None if row is None else replenishment_of(row)

    async def update(
        self, replenishment_order_id: str, status: ReplenishmentStatus, note: str, now: datetime
    ) -> ReplenishmentOrder:
        conn = await self._connect()
        row = (
            await conn.execute(
                update(replenishment_table)
                .where(replenishment_table.c.replenishment_order_id == replenishment_order_id)
                .values(status=status.value, note=note, updated_at=now)
                .returning(*replenishment_table.c)
            )
        ).one()
        return replenishment_of(row)
