"""Channel payloads that could not be ingested, sealed (they hold personal data) for people to fix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.ids import new_id
from services.kit.sealing import KeyRing
from services.orders.store.tables import quarantine_table


class QuarantineRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    async def add(
        self,
        channel: str,
        channel_order_id: str,
        error_field: str,
        reason: str,
        payload: Mapping[str, Any],
        received_at: datetime,
    ) -> None:
        """Keep a refused payload, sealed under its own id."""
        quarantine_id = new_id()
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        await self.conn.execute(
            insert(quarantine_table).values(
                quarantine_id=quarantine_id,
                channel=channel,
                channel_order_id=channel_order_id[:128],
                error_field=error_field,
                reason=reason,
                sealed_payload=self.keys.seal(raw, quarantine_id),
                received_at=received_at,
            )
        )
