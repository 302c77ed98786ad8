from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inventory import bootstrap, handlers
from services.inventory.handlers import Policy
from services.inventory.store import InventoryUnitOfWork
from services.kit.clock import FixedClock
from services.kit.db import make_engine

# the caller whose receipt, adjustment and return ids the tests use (idempotency.owner_of)
CLERK = "gateway/user/clerk-1"


@dataclass
class Inventory:
    """Handlers on a throwaway database, with a clock the test moves."""

    engine: AsyncEngine
    clock: FixedClock
    policy: Policy

    def uow(self) -> InventoryUnitOfWork:
        return bootstrap.unit_of_work(self.engine, self.clock)

    async def stock(self, warehouse_id: str, *skus_and_units: tuple[str, int]) -> None:
        await handlers.put_warehouse(self.uow(), warehouse_id, warehouse_id)
        for sku, units in skus_and_units:
            await handlers.put_sku(self.uow(), sku, sku)
            await handlers.record_receipt(
                self.uow(), self.policy, f"r-{warehouse_id}-{sku}", warehouse_id, sku, units, owner=CLERK
            )

    async def row(self, sku: str, warehouse_id: str) -> tuple[int, int, bool]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT on_hand, reserved, sellable FROM stock WHERE sku = :s AND warehouse_id = :w"
                    ),
                    {"s": sku, "w": warehouse_id},
                )
            ).one()
        return row.on_hand, row.reserved, row.sellable

    async def scalar(self, query: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(text(query))).scalar_one())

    async def outbox_subjects(self) -> list[str]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(text("SELECT subject FROM outbox ORDER BY id"))).scalars())


def inventory_factory(policy: Policy) -> Callable[[str], AsyncIterator[Inventory]]:
    async def build(url: str) -> AsyncIterator[Inventory]:
        engine = make_engine(url, pool_size=60)
        yield Inventory(engine, FixedClock(datetime(2026, 11, 21, 8, tzinfo=UTC)), policy)
        await engine.dispose()

    return build


@pytest.fixture
async def inventory(inventory_db: str) -> AsyncIterator[Inventory]:
    async for built in inventory_factory(Policy())(inventory_db):
        yield built
