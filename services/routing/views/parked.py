"""Parked orders, page by page in order id order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.domain.model import ParkedOrder
from services.routing.store.repositories import parked_order
from services.routing.store.tables import parked_orders_table

DEFAULT_PAGE = 100
MAX_PAGE = 1000


async def list_parked(engine: AsyncEngine, page_size: int, page_token: str) -> tuple[list[ParkedOrder], str]:
    """One page and the token of the next ("" on the last page)."""
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    query = select(parked_orders_table).order_by(parked_orders_table.c.order_id).limit(size + 1)
    if page_token:
        query = query.where(parked_orders_table.c.order_id > page_token)
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    return [parked_order(row) for row in rows[:size]], rows[size - 1].order_id if len(rows) > size else ""
