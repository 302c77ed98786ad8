"""Logistics' read side: shipment lists, a batch's progress, the dead letters, tracking, pick lists,
the quarantine and the carriers' breakers (SQL, no writes and no rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.errors import InvalidArgument
from services.kit.sealing import KeyRing
from services.logistics.domain.model import Shipment, TrackingEvent
from services.logistics.domain.waybills import BatchProgress, WaybillRequest, WaybillState
from services.logistics.store.shipments import ShipmentRepository, tracking_event
from services.logistics.store.tables import (
    carrier_breakers_table,
    pick_lists_table,
    quarantined_pushes_table,
    shipments_table,
    tracking_events_table,
    waybill_batches_table,
    waybill_requests_table,
)
from services.logistics.store.waybills import waybill_request

DEFAULT_PAGE, MAX_PAGE = 50, 500


def page_bounds(page_size: int, token: str) -> tuple[int, int]:
    size = DEFAULT_PAGE if page_size <= 0 else min(page_size, MAX_PAGE)
    if token and not token.isdigit():
        raise InvalidArgument("page.page_token", "is not a token this list gave")
    return size, int(token or 0)


def next_token(offset: int, size: int, found: int) -> str:
    return str(offset + size) if found > size else ""


@dataclass(frozen=True)
class Batch:
    batch_id: str
    created_at: datetime
    progress: BatchProgress
    finished_at: datetime | None
    items: list[WaybillRequest]


@dataclass(frozen=True)
class PickListView:
    pick_list_id: str
    warehouse_id: str
    created_at: datetime
    shipments: list[Shipment]


@dataclass(frozen=True)
class QuarantinedPush:
    quarantine_id: str
    carrier: str
    received_at: datetime
    reason: str
    content_type: str
    body: bytes


class LogisticsViews:
    def __init__(self, engine: AsyncEngine, keys: KeyRing) -> None:
        self.engine = engine
        self.keys = keys

    async def shipments(
        self, order_id: str, status: str, warehouse_id: str, page_size: int, token: str
    ) -> tuple[list[Shipment], str]:
        size, offset = page_bounds(page_size, token)
        query = select(shipments_table)
        if order_id:
            query = query.where(shipments_table.c.order_id == order_id)
        if status:
            query = query.where(shipments_table.c.status == status)
        if warehouse_id:
            query = query.where(shipments_table.c.warehouse_id == warehouse_id)
        query = query.order_by(shipments_table.c.created_at.desc(), shipments_table.c.shipment_id.desc())
        async with self.engine.connect() as conn:
            repository = ShipmentRepository(conn, self.keys)
            rows = (await conn.execute(query.offset(offset).limit(size + 1))).all()
            found = [repository.shipment(row) for row in rows]
        return found[:size], next_token(offset, size, len(found))

    async def batch(self, batch_id: str) -> Batch | None:
        async with self.engine.connect() as conn:
            head = (
                await conn.execute(
                    select(waybill_batches_table).where(waybill_batches_table.c.batch_id == batch_id)
                )
            ).first()
            if head is None:
                return None
            rows = await conn.execute(
                select(waybill_requests_table)
                .where(waybill_requests_table.c.batch_id == batch_id)
                .order_by(waybill_requests_table.c.shipment_id)
            )
            items = [waybill_request(row) for row in rows]
        counted = {state: sum(1 for item in items if item.state is state) for state in WaybillState}
        progress = BatchProgress(
            len(items),
            counted[WaybillState.CREATED],
            counted[WaybillState.DEAD],
            counted[WaybillState.SKIPPED],
        )
        finished_at = (
            max((i.updated_at for i in items if i.updated_at), default=None) if progress.finished else None
        )
        return Batch(batch_id, head.created_at, progress, finished_at, items)

    async def dead_letters(self, page_size: int, token: str) -> tuple[list[WaybillRequest], str]:
        size, offset = page_bounds(page_size, token)
        query = (
            select(waybill_requests_table)
            .where(waybill_requests_table.c.state == WaybillState.DEAD.value)
            .order_by(waybill_requests_table.c.updated_at.desc(), waybill_requests_table.c.shipment_id)
            .offset(offset)
            .limit(size + 1)
        )
        async with self.engine.connect() as conn:
            found = [waybill_request(row) for row in await conn.execute(query)]
        return found[:size], next_token(offset, size, len(found))

    async def tracking(self, shipment_id: str) -> list[TrackingEvent]:
        query = (
            select(tracking_events_table)
            .where(tracking_events_table.c.shipment_id == shipment_id)
            .order_by(tracking_events_table.c.occurred_at, tracking_events_table.c.id)
        )
        async with self.engine.connect() as conn:
            return [tracking_event(row) for row in await conn.execute(query)]

    async def pick_list(self, pick_list_id: str) -> PickListView | None:
        async with self.engine.connect() as conn:
            head = (
                await conn.execute(
                    select(pick_lists_table).where(pick_lists_table.c.pick_list_id == pick_list_id)
                )
            ).first()
            if head is None:
                return None
            repository = ShipmentRepository(conn, self.keys)
            rows = await conn.execute(
                select(shipments_table)
                .where(shipments_table.c.pick_list_id == pick_list_id)
                .order_by(
                    shipments_table.c.expedited.desc(),
                    shipments_table.c.perishable.desc(),
                    shipments_table.c.deadline.asc().nulls_last(),
                    shipments_table.c.created_at,
                    shipments_table.c.shipment_id,
                )
            )
            shipments = [repository.shipment(row) for row in rows]
        return PickListView(head.pick_list_id, head.warehouse_id, head.created_at, shipments)

    async def order_exists(self, order_id: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(shipments_table)
                .where(shipments_table.c.order_id == order_id)
            )
        return bool(found)

    async def quarantined(self, page_size: int, token: str) -> tuple[list[QuarantinedPush], str]:
        size, offset = page_bounds(page_size, token)
        query = (
            select(quarantined_pushes_table)
            .order_by(quarantined_pushes_table.c.received_at.desc(), quarantined_pushes_table.c.quarantine_id)
            .offset(offset)
            .limit(size + 1)
        )
        async with self.engine.connect() as conn:
            rows: Sequence[Any] = (await conn.execute(query)).all()
        found = [
            QuarantinedPush(r.quarantine_id, r.carrier, r.received_at, r.reason, r.content_type, r.body)
            for r in rows
        ]
        return found[:size], next_token(offset, size, len(found))

    async def breaker_changes(self) -> dict[str, tuple[str, datetime]]:
        """Each carrier's breaker state as last recorded by the replica that runs the batches."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(carrier_breakers_table))
            return {row.carrier: (row.state, row.changed_at) for row in rows}
