"""Received returns waiting for inventory to put their intact units back: a queue with due times in
the database (idempotent on the return id, as inventory's restock is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftersales.handlers.ports import RestockJob
from services.aftersales.store.tables import restocks_table
from services.kit.errors import NotFound

_s = restocks_table.c
ERROR_LENGTH = 2000


def restock_job(row: Row[Any]) -> RestockJob:
    return RestockJob(
        return_id=row.return_id,
        ticket_id=row.ticket_id,
        order_id=row.order_id,
        warehouse_id=row.warehouse_id,
        lines=tuple((str(sku), int(units)) for sku, units in row.lines),
        attempts=row.attempts,
        kind=row.kind,
    )


class RestockRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, job: RestockJob, now: datetime) -> None:
        """Due now; adding the same return again does nothing."""
        statement = insert(restocks_table).values(
            return_id=job.return_id,
            kind=job.kind,
            ticket_id=job.ticket_id,
            order_id=job.order_id,
            warehouse_id=job.warehouse_id,
            lines=[[sku, units] for sku, units in job.lines],
            received_at=now,
            attempts=job.attempts,
            next_attempt_at=now,
        )
        await self.conn.execute(statement.on_conflict_do_nothing(index_elements=["return_id"]))

    async def get(self, return_id: str) -> RestockJob | None:
        row = (await self.conn.execute(select(restocks_table).where(_s.return_id == return_id))).first()
        return restock_job(row) if row is not None else None

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RestockJob]:
        """Returns due to be restocked, each leased until `lease_until` with one more attempt counted;
        rows another worker holds are skipped."""
        due = (
            select(_s.return_id)
            .where(_s.next_attempt_at <= now, _s.restocked_at.is_(None))
            .order_by(_s.next_attempt_at, _s.return_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        claimed = (
            update(restocks_table)
            .where(_s.return_id == due.c.return_id)
            .values(next_attempt_at=lease_until, attempts=_s.attempts + 1)
            .returning(*restocks_table.c)
        )
        rows = (await self.conn.execute(claimed)).all()
        return sorted((restock_job(row) for row in rows), key=lambda job: job.return_id)

    async def done(self, return_id: str, now: datetime) -> None:
        await self._update(return_id, restocked_at=now, next_attempt_at=None, last_error="")

    async def retry(self, return_id: str, at: datetime, error: str) -> None:
        await self._update(return_id, next_attempt_at=at, last_error=error[:ERROR_LENGTH])

    async def _update(self, return_id: str, **values: Any) -> None:
        statement = update(restocks_table).where(_s.return_id == return_id).values(**values)
        if (await self.conn.execute(statement.returning(_s.return_id))).first() is None:
            raise NotFound(f"return {return_id} is not waiting to be restocked")
