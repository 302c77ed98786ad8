"""SLA owners per queue: who is told when a queue's order turns amber, and its backup, escalated to
when it turns red."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain.sla import Owners
from services.orders.store.tables import sla_owners_table


class SlaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def owners(self, queues: Sequence[str]) -> dict[str, Owners]:
        t = sla_owners_table.c
        rows = await self.conn.execute(
            select(t.queue, t.owner, t.backup).where(t.queue.in_(sorted(set(queues))))
        )
        return {row.queue: Owners(row.owner, row.backup) for row in rows}

    async def all_owners(self) -> dict[str, Owners]:
        t = sla_owners_table.c
        rows = await self.conn.execute(select(t.queue, t.owner, t.backup).order_by(t.queue))
        return {row.queue: Owners(row.owner, row.backup) for row in rows}

    async def set_owners(self, queue: str, owners: Owners, by: str, at: datetime) -> None:
        values = {
            "queue": queue,
            "owner": owners.owner,
            "backup": owners.backup,
            "updated_at": at,
            "updated_by": by,
        }
        statement = insert(sla_owners_table).values(values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["queue"],
                set_={
                    name: statement.excluded[name] for name in ("owner", "backup", "updated_at", "updated_by")
                },
            )
        )
