"""Reservations and their lines, read whole (a reservation never comes without its lines)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from services.inventory.domain.model import Line, Reservation, ReservationStatus
from services.inventory.store.connection import Connect
from services.inventory.store.tables import reservation_lines_table, reservations_table


class ReservationRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def latest(self, order_id: str, *, for_update: bool = False) -> Reservation | None:
        conn = await self._connect()
        query = (
            select(reservations_table)
            .where(reservations_table.c.order_id == order_id)
            .order_by(reservations_table.c.created_at.desc(), reservations_table.c.reservation_id.desc())
            .limit(1)
        )
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return None if row is None else (await self._whole([row]))[0]

    async def transition(
        self,
        order_id: str,
        current: ReservationStatus,
        target: ReservationStatus,
        now: datetime,
        *,
        unexpired_at: datetime | None = None,
    ) -> Reservation | None:
        """The order's `current` reservation (unexpired at that time, if given) now `target`; else None."""
        conn = await self._connect()
        query = update(reservations_table).where(
            reservations_table.c.order_id == order_id, reservations_table.c.status == current.value
        )
        if unexpired_at is not None:
            query = query.where(reservations_table.c.expires_at > unexpired_at)
        row = (
            await conn.execute(
                query.values(status=target.value, updated_at=now).returning(*reservations_table.c)
            )
        ).first()
        return None if row is None else (await self._whole([row]))[0]

    async def claim_expired(
        self, now: datetime, limit: int, keys: Sequence[tuple[str, str]] = ()
    ) -> list[Reservation]:
        """Active reservations past their TTL; SKIP LOCKED is on reservation rows, never on stock rows."""
        conn = await self._connect()
        query = (
            select(*reservations_table.c)
            .where(reservations_table.c.status == ReservationStatus.ACTIVE.value)
            .where(reservations_table.c.expires_at <= now)
            .order_by(reservations_table.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if keys:
            query = query.where(
                select(reservation_lines_table.c.reservation_id)
                .where(reservation_lines_table.c.reservation_id == reservations_table.c.reservation_id)
                .where(
                    func.row(reservation_lines_table.c.sku, reservation_lines_table.c.warehouse_id).in_(
                        [func.row(sku, warehouse) for sku, warehouse in keys]
                    )
                )
                .exists()
            )
        return await self._whole(list((await conn.execute(query)).all()))

    async def mark(self, reservation_ids: Sequence[str], status: ReservationStatus, now: datetime) -> None:
        conn = await self._connect()
        await conn.execute(
            update(reservations_table)
            .where(reservations_table.c.reservation_id.in_(reservation_ids))
            .values(status=status.value, updated_at=now)
        )

    async def _whole(self, rows: Sequence[Any]) -> list[Reservation]:
        """The rows with their lines (in lock order), in one query however many there are."""
        conn = await self._connect()
        if not rows:
            return []
        ids = [row.reservation_id for row in rows]
        lines: dict[str, list[Line]] = defaultdict(list)
        buckets: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        query = (
            select(
                reservation_lines_table.c.reservation_id,
                reservation_lines_table.c.sku,
                reservation_lines_table.c.warehouse_id,
                reservation_lines_table.c.quantity,
                reservation_lines_table.c.bucket,
            )
            .order_by(reservation_lines_table.c.sku, reservation_lines_table.c.warehouse_id)
            .where(
                reservation_lines_table.c.reservation_id == ids[0]
                if len(ids) == 1
                else reservation_lines_table.c.reservation_id.in_(ids)
            )
        )
        for line in await conn.execute(query):
            lines[line.reservation_id].append(Line(line.sku, line.warehouse_id, line.quantity))
            if line.bucket is not None:
                buckets[line.reservation_id][(line.sku, line.warehouse_id)] = line.bucket
        return [
            Reservation(
                reservation_id=row.reservation_id,
                order_id=row.order_id,
                status=ReservationStatus(row.status),
                expires_at=row.expires_at,
                created_at=row.created_at,
                lines=tuple(lines[row.reservation_id]),
                buckets=buckets[row.reservation_id],
            )
            for row in rows
        ]
