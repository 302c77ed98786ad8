"""What the source systems (WMS, ERP, carriers, marketplaces) reported about orders, as received."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain.anchor import Observation
from services.orders.store.tables import source_reports_table, source_status_table


class SourceRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add_report(
        self,
        order_id: str,
        source: str,
        fields: dict[str, Any],
        observation: Observation | None,
        rules_version: int,
        reported_at: datetime,
        received_at: datetime,
    ) -> None:
        await self.conn.execute(
            source_reports_table.insert().values(
                order_id=order_id,
                source=source,
                fields=fields,
                rule=observation.rule if observation else "",
                rules_version=rules_version,
                reported_at=reported_at,
                received_at=received_at,
            )
        )

    async def observed(
        self, order_id: str, source: str, observation: Observation, reported_at: datetime, now: datetime
    ) -> None:
        """The source's latest word on the order, for the drift report; a late report of an older
        event never overwrites the source's newer word."""
        values = {
            "raw_status": observation.raw_status[:500],
            "means": [status.value for status in observation.means],
            "rule": observation.rule,
            "reported_at": reported_at,
            "received_at": now,
        }
        statement = insert(source_status_table).values(order_id=order_id, source=source, **values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["order_id", "source"],
                set_=values,
                where=source_status_table.c.reported_at <= statement.excluded.reported_at,
            )
        )
