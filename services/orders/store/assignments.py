"""Which customers each customer-service agent looks after (their row-level scope)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.store.tables import customer_assignments_table

_A = customer_assignments_table.c


class AssignmentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def assign(
        self, agent_id: str, buyer_ids: Sequence[str], replace: bool, now: datetime
    ) -> list[str]:
        """Give the agent these customers (instead of their present ones when `replace`); returns
        every customer the agent now has, in order."""
        table = customer_assignments_table
        if replace:
            await self.conn.execute(table.delete().where(_A.agent_id == agent_id))
        if buyer_ids:
            await self.conn.execute(
                insert(table).on_conflict_do_nothing(),
                [{"agent_id": agent_id, "buyer_id": b, "assigned_at": now} for b in dict.fromkeys(buyer_ids)],
            )
        rows = await self.conn.execute(
            select(_A.buyer_id).where(_A.agent_id == agent_id).order_by(_A.buyer_id)
        )
        return [row.buyer_id for row in rows]

    async def customers_of(self, agent_id: str) -> list[str]:
        rows = await self.conn.execute(
            select(_A.buyer_id).where(_A.agent_id == agent_id).order_by(_A.buyer_id)
        )
        return [row.buyer_id for row in rows]

    async def is_assigned(self, agent_id: str, buyer_id: str) -> bool:
        found = await self.conn.scalar(
            select(_A.buyer_id).where(_A.agent_id == agent_id, _A.buyer_id == buyer_id)
        )
        return found is not None
