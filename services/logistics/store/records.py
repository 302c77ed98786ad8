"""The small records: pick lists, quarantined pushes, raised anomalies, the carriers' breaker states."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.ids import new_id
from services.logistics.domain.model import Shipment
from services.logistics.store.tables import (
    anomalies_table,
    carrier_breakers_table,
    pick_lists_table,
    quarantined_pushes_table,
)


class PickListRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, pick_list_id: str, warehouse_id: str, at: datetime) -> None:
        await self.conn.execute(
            pick_lists_table.insert().values(
                pick_list_id=pick_list_id, warehouse_id=warehouse_id, created_at=at
            )
        )

    async def exists(self, pick_list_id: str) -> bool:
        found = await self.conn.scalar(
            select(pick_lists_table.c.pick_list_id).where(pick_lists_table.c.pick_list_id == pick_list_id)
        )
        return found is not None


class QuarantineRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, carrier: str, content_type: str, body: bytes, reason: str, at: datetime) -> str:
        quarantine_id = new_id()
        await self.conn.execute(
            quarantined_pushes_table.insert().values(
                quarantine_id=quarantine_id,
                carrier=carrier[:32],
                content_type=content_type[:200],
                body=body,
                reason=reason[:1000],
                received_at=at,
            )
        )
        return quarantine_id


class AnomalyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(
        self, key: str, rule: str, shipment: Shipment, source: str, message: str, at: datetime
    ) -> bool:
        statement = (
            insert(anomalies_table)
            .values(
                anomaly_key=key,
                rule=rule,
                shipment_id=shipment.shipment_id,
                order_id=shipment.order_id,
                source=source,
                message=message,
                raised_at=at,
            )
            .on_conflict_do_nothing()
            .returning(anomalies_table.c.anomaly_key)
        )
        return (await self.conn.execute(statement)).first() is not None


class BreakerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def save(self, carrier: str, state: str, at: datetime) -> bool:
        row = insert(carrier_breakers_table).values(carrier=carrier, state=state, changed_at=at)
        upsert = row.on_conflict_do_update(
            index_elements=["carrier"],
            set_={"state": row.excluded.state, "changed_at": row.excluded.changed_at},
            where=carrier_breakers_table.c.state != row.excluded.state,
        ).returning(carrier_breakers_table.c.carrier)
        return (await self.conn.execute(upsert)).first() is not None
