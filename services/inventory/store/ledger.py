"""The stock ledger: every movement appended with its trace, and the audit that recomputes rows from it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text

from services.inventory.domain.model import Movement, StockAudit
from services.inventory.store.connection import Connect
from services.inventory.store.tables import ledger_table
from services.kit.tracing import current_trace_id

_AUDIT = text(
    """
    WITH booked AS (
        SELECT sku, warehouse_id,
               sum(on_hand_delta)::bigint AS on_hand, sum(reserved_delta)::bigint AS reserved
          FROM ledger GROUP BY sku, warehouse_id),
    held AS (
        SELECT line.sku, line.warehouse_id, sum(line.quantity)::bigint AS units
          FROM reservations AS r JOIN reservation_lines AS line USING (reservation_id)
         WHERE r.status = 'ACTIVE' GROUP BY line.sku, line.warehouse_id)
    SELECT COALESCE(s.sku, b.sku) AS sku, COALESCE(s.warehouse_id, b.warehouse_id) AS warehouse_id,
           COALESCE(s.on_hand, 0) AS on_hand, COALESCE(b.on_hand, 0) AS ledger_on_hand,
           COALESCE(s.reserved, 0) AS reserved, COALESCE(b.reserved, 0) AS ledger_reserved,
           COALESCE(h.units, 0) AS open_units
      FROM stock AS s
 FULL JOIN booked AS b USING (sku, warehouse_id)
 LEFT JOIN held AS h
        ON h.sku = COALESCE(s.sku, b.sku) AND h.warehouse_id = COALESCE(s.warehouse_id, b.warehouse_id)
    """
)


class LedgerRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def record(
        self,
        kind: Movement,
        now: datetime,
        moves: Iterable[tuple[str, str, int, int]],
        *,
        order_id: str = "",
        reference: str = "",
        reason: str = "",
    ) -> None:
        """Append (sku, warehouse, on_hand_delta, reserved_delta) movements, with the current trace."""
        conn = await self._connect()
        trace_id = current_trace_id()
        rows = [
            {
                "at": now,
                "sku": sku,
                "warehouse_id": warehouse_id,
                "kind": kind.value,
                "on_hand_delta": on_hand_delta,
                "reserved_delta": reserved_delta,
                "order_id": order_id,
                "reference": reference,
                "reason": reason,
                "trace_id": trace_id,
            }
            for sku, warehouse_id, on_hand_delta, reserved_delta in moves
        ]
        if rows:
            await conn.execute(ledger_table.insert(), rows)

    async def audit(self) -> list[StockAudit]:
        """Every row beside its sums from the ledger and its units held by active reservations."""
        conn = await self._connect()
        return [
            StockAudit(
                sku=row.sku,
                warehouse_id=row.warehouse_id,
                on_hand=row.on_hand,
                ledger_on_hand=row.ledger_on_hand,
                reserved=row.reserved,
                ledger_reserved=row.ledger_reserved,
                open_reservation_units=row.open_units,
            )
            for row in await conn.execute(_AUDIT)
        ]
