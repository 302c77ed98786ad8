"""Console users in the gateway's database (domain/users.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.domain.users import ConsoleUser
from services.gateway.store.tables import users_table

_COLUMNS = (
    users_table.c.subject,
    users_table.c.password_hash,
    users_table.c.roles,
    users_table.c.customer_id,
)


class UserRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, subject: str) -> ConsoleUser | None:
        row = (await self.conn.execute(select(*_COLUMNS).where(users_table.c.subject == subject))).first()
        if row is None:
            return None
        return ConsoleUser(row.subject, row.password_hash, frozenset(row.roles), row.customer_id)

    async def put(self, user: ConsoleUser, now: datetime) -> bool:
        """Creates or replaces the user; true when it was new."""
        values = {
            "password_hash": user.password_hash,
            "roles": sorted(user.roles),
            "customer_id": user.customer_id,
            "updated_at": now,
        }
        created = await self.conn.execute(
            insert(users_table)
            .values(subject=user.subject, created_at=now, **values)
            .on_conflict_do_update(index_elements=[users_table.c.subject], set_=values)
            .returning(users_table.c.created_at == now)
        )
        return bool(created.scalar_one())
