"""Waybill batches and their requests: the retry queue (due times in the database, so a crash loses
nothing) and the dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.logistics.domain.waybills import PENDING, WaybillRequest, WaybillState
from services.logistics.store.tables import waybill_batches_table, waybill_requests_table

_PENDING = sorted(state.value for state in PENDING)
_WAITING = [WaybillState.QUEUED.value, WaybillState.RETRYING.value]
_requests = waybill_requests_table.c


def waybill_request(row: Row[Any]) -> WaybillRequest:
    return WaybillRequest(
        batch_id=row.batch_id,
        shipment_id=row.shipment_id,
        order_id=row.order_id,
        carrier=row.carrier,
        state=WaybillState(row.state),
        attempts=row.attempts,
        uncertain=row.uncertain,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        waybill_no=row.waybill_no,
        updated_at=row.updated_at,
    )


def _row(request: WaybillRequest) -> dict[str, Any]:
    return {
        "batch_id": request.batch_id,
        "shipment_id": request.shipment_id,
        "order_id": request.order_id,
        "carrier": request.carrier,
        "state": request.state.value,
        "attempts": request.attempts,
        "uncertain": request.uncertain,
        "next_attempt_at": request.next_attempt_at,
        "last_error": request.last_error[:2000],
        "waybill_no": request.waybill_no,
        "updated_at": request.updated_at,
    }


class WaybillRequestRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def batch_of_request(self, request_id: str) -> str | None:
        found: str | None = await self.conn.scalar(
            select(waybill_batches_table.c.batch_id).where(waybill_batches_table.c.request_id == request_id)
        )
        return found

    async def add_batch(
        self, batch_id: str, request_id: str, at: datetime, requests: Sequence[WaybillRequest]
    ) -> None:
        await self.conn.execute(
            waybill_batches_table.insert().values(
                batch_id=batch_id, request_id=request_id or None, created_at=at, total=len(requests)
            )
        )
        if requests:
            await self.conn.execute(waybill_requests_table.insert(), [_row(request) for request in requests])

    async def items(self, batch_id: str) -> list[WaybillRequest]:
        rows = await self.conn.execute(select(waybill_requests_table).where(_requests.batch_id == batch_id))
        return [waybill_request(row) for row in rows]

    async def pending_for(self, shipment_ids: Sequence[str]) -> dict[str, WaybillRequest]:
        if not shipment_ids:
            return {}
        rows = await self.conn.execute(
            select(waybill_requests_table).where(
                _requests.shipment_id.in_(list(shipment_ids)), _requests.state.in_(_PENDING)
            )
        )
        return {row.shipment_id: waybill_request(row) for row in rows}

    async def claim_due(self, now: datetime, abandoned_before: datetime, limit: int) -> list[WaybillRequest]:
        due = (
            select(_requests.batch_id, _requests.shipment_id)
            .where(
                or_(
                    and_(_requests.state.in_(_WAITING), _requests.next_attempt_at <= now),
                    and_(
                        _requests.state == WaybillState.IN_FLIGHT.value,
                        _requests.updated_at < abandoned_before,
                    ),
                )
            )
            .order_by(_requests.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        rows = await self.conn.execute(
            update(waybill_requests_table)
            .where(_requests.batch_id == due.c.batch_id, _requests.shipment_id == due.c.shipment_id)
            .values(
                # an attempt abandoned in flight may have reached the carrier: ask before asking again
                uncertain=_requests.uncertain | (_requests.state == WaybillState.IN_FLIGHT.value),
                state=WaybillState.IN_FLIGHT.value,
                updated_at=now,
            )
            .returning(*waybill_requests_table.c)
        )
        return [waybill_request(row) for row in rows]

    async def save(self, request: WaybillRequest) -> None:
        values = _row(request)
        await self.conn.execute(
            update(waybill_requests_table)
            .where(_requests.batch_id == request.batch_id, _requests.shipment_id == request.shipment_id)
            .values({k: v for k, v in values.items() if k not in ("batch_id", "shipment_id")})
        )

    async def dead_letter(self, shipment_id: str, *, lock: bool = False) -> WaybillRequest | None:
        query = (
            select(waybill_requests_table)
            .where(_requests.shipment_id == shipment_id)
            .order_by(_requests.updated_at.desc())
            .limit(1)
        )
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        if row is None or row.state != WaybillState.DEAD.value:
            return None
        return waybill_request(row)
