"""Warehouses and the SKU catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert

from services.inventory.domain.model import CATALOGUE_FIELDS, GoodsType, Sku, SkuEntry
from services.inventory.store.connection import Connect
from services.inventory.store.tables import skus_table, warehouses_table


def sku_of(row: Any) -> Sku:
    """A `skus` row (its columns are named as the entry's fields) as a catalogue entry."""
    values = {name: getattr(row, name) for name in CATALOGUE_FIELDS}
    values["goods_type"] = GoodsType(row.goods_type)
    return Sku(sku=row.sku, **values, created_at=row.created_at, updated_at=row.updated_at)


class CatalogueRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def put_warehouse(self, warehouse_id: str, name: str) -> None:
        conn = await self._connect()
        await conn.execute(
            insert(warehouses_table)
            .values(warehouse_id=warehouse_id, name=name)
            .on_conflict_do_update(index_elements=["warehouse_id"], set_={"name": name})
        )

    async def put_sku(self, entry: SkuEntry, now: datetime) -> tuple[Sku, bool]:
        """The entry as stored, and whether it changed (a repeat leaves it, and `updated_at`, as it was)."""
        conn = await self._connect()
        values = {name: getattr(entry, name) for name in CATALOGUE_FIELDS}
        values["goods_type"] = entry.goods_type.value
        statement = insert(skus_table).values(sku=entry.sku, **values, updated_at=now)
        changed = or_(
            *(skus_table.c[name].is_distinct_from(statement.excluded[name]) for name in CATALOGUE_FIELDS)
        )
        written = (
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["sku"],
                    set_={**values, "updated_at": statement.excluded.updated_at},
                    where=changed,
                ).returning(*skus_table.c)
            )
        ).first()
        if written is not None:
            return sku_of(written), True
        stored = await self.sku(entry.sku)
        assert stored is not None, "the conflicting entry exists and SKUs are never deleted"
        return stored, False

    async def sku(self, sku: str) -> Sku | None:
        conn = await self._connect()
        row = (await conn.execute(select(skus_table).where(skus_table.c.sku == sku))).first()
        return None if row is None else sku_of(row)

    async def skus(self, skus: Iterable[str]) -> dict[str, Sku]:
        conn = await self._connect()
        rows = await conn.execute(select(skus_table).where(skus_table.c.sku.in_(set(skus))))
        return {row.sku: sku_of(row) for row in rows}

    async def unknown(self, skus: Iterable[str], warehouses: Iterable[str]) -> tuple[set[str], set[str]]:
        conn = await self._connect()
        skus, warehouses = set(skus), set(warehouses)
        known_skus = set(
            (await conn.scalars(select(skus_table.c.sku).where(skus_table.c.sku.in_(skus)))).all()
        )
        known_warehouses = set(
            (
                await conn.scalars(
                    select(warehouses_table.c.warehouse_id).where(
                        warehouses_table.c.warehouse_id.in_(warehouses)
                    )
                )
            ).all()
        )
        return skus - known_skus, warehouses - known_warehouses
