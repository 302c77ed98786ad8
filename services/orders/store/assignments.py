"""Which customers each customer-service agent looks after (their row-level scope)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.store.tables import customer_assignments_table, overdue_tickets_table

_A = customer_assignments_table.c
_CLEAR = overdue_tickets_table.delete().where(
    overdue_tickets_table.c.ticket_id == any_(bindparam("ids", type_=ARRAY(String)))
)


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


class OverdueTicketRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def flag(self, buyer_id: str, ticket_id: str, at: datetime) -> None:
        await self.conn.execute(
            insert(overdue_tickets_table)
            .values(ticket_id=ticket_id, buyer_id=buyer_id, flagged_at=at)
            .on_conflict_do_nothing()
        )

    async def clear(self, ticket_ids: Sequence[str]) -> None:
        if ticket_ids:
            await self.conn.execute(_CLEAR, {"ids": list(dict.fromkeys(ticket_ids))})

    async def customers_among(self, buyer_ids: Sequence[str]) -> set[str]:
        table = overdue_tickets_table
        rows = await self.conn.execute(
            select(table.c.buyer_id).where(table.c.buyer_id.in_(list(buyer_ids))).distinct()
        )
        return {row.buyer_id for row in rows}
