"""The kit's integration fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
async def effects(orders_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The orders database with a table a consumer's handler writes its effects to."""
    async with orders_engine.begin() as conn:
        await conn.execute(text("CREATE TABLE effects (id serial PRIMARY KEY, event_id text NOT NULL)"))
    yield orders_engine
