"""Payment notifications as stored: one row per provider transaction, with what became of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain.payments import PaymentRecord, PaymentState
from services.orders.store.rows import payment_from_row, payment_row
from services.orders.store.tables import payments_table

_P = payments_table.c


class PaymentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, record: PaymentRecord, next_attempt_at: datetime) -> bool:
        """Store a new notification; False when its provider's transaction is already stored."""
        inserted = await self.conn.execute(
            insert(payments_table)
            .values(**payment_row(record, next_attempt_at))
            .on_conflict_do_nothing(constraint="payments_transaction_unique")
            .returning(_P.payment_id)
        )
        return inserted.first() is not None

    async def get(self, payment_id: str, lock: bool = False) -> PaymentRecord | None:
        query = select(payments_table).where(_P.payment_id == payment_id)
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else payment_from_row(row._mapping)

    async def by_transaction(self, provider: str, transaction_id: str) -> PaymentRecord | None:
        row = (
            await self.conn.execute(
                select(payments_table).where(_P.provider == provider, _P.transaction_id == transaction_id)
            )
        ).first()
        return None if row is None else payment_from_row(row._mapping)

    async def settle(self, record: PaymentRecord, now: datetime) -> None:
        """Keep what handling decided (state, reason, order); nothing more is due."""
        await self.conn.execute(
            update(payments_table)
            .where(_P.payment_id == record.payment_id)
            .values(
                state=record.state.value,
                reason=record.reason,
                order_id=record.order_id,
                next_attempt_at=None,
                updated_at=now,
            )
        )

    async def attempt_failed(self, payment_id: str, error: str, now: datetime) -> PaymentRecord:
        """Count a failed attempt at handling it; returns the notification as it now stands."""
        row = (
            await self.conn.execute(
                update(payments_table)
                .where(_P.payment_id == payment_id)
                .values(attempts=_P.attempts + 1, reason=error[:2000], updated_at=now)
                .returning(payments_table)
            )
        ).first()
        assert row is not None
        return payment_from_row(row._mapping)

    async def retry(self, record: PaymentRecord, next_attempt_at: datetime | None) -> None:
        """Due again at `next_attempt_at` (RECEIVED), or dead-lettered (DEAD, nothing due)."""
        await self.conn.execute(
            update(payments_table)
            .where(_P.payment_id == record.payment_id)
            .values(state=record.state.value, next_attempt_at=next_attempt_at)
        )

    async def due(self, now: datetime, limit: int) -> list[str]:
        rows = await self.conn.execute(
            select(_P.payment_id)
            .where(_P.state == PaymentState.RECEIVED.value, _P.next_attempt_at <= now)
            .order_by(_P.next_attempt_at)
            .limit(limit)
        )
        return [row.payment_id for row in rows]

    async def replay(self, payment_id: str, now: datetime) -> bool:
        """A dead-lettered notification is handled again now; False when it is not dead-lettered."""
        result = await self.conn.execute(
            update(payments_table)
            .where(_P.payment_id == payment_id, _P.state == PaymentState.DEAD.value)
            .values(state=PaymentState.RECEIVED.value, attempts=0, next_attempt_at=now)
            .returning(_P.payment_id)
        )
        return result.first() is not None
