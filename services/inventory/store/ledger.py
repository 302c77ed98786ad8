"""The stock ledger: every movement appended with its trace, and the audit that recomputes rows from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import text

from services.inventory.domain.model import Movement, StockAudit
from services.inventory.store.connection import Connect
from services.kit.tracing import current_trace_id

_AUDIT = text(
    """
    WITH booked AS (
        SELECT sku, warehouse_id,
               sum(on_hand_delta)::bigint AS on_hand, sum(reserved_delta)::bigint AS reserved
          FROM ledger GROUP BY sku, warehouse_id),
    held AS (
        SELECT line.sku, line.warehouse_id, sum(line.quantity)::bigint AS units,
               COALESCE(sum(line.quantity) FILTER (WHERE line.bucket IS NOT NULL), 0)::bigint AS bucket_units
          FROM reservations AS r JOIN reservation_lines AS line USING (reservation_id)
         WHERE r.status = 'ACTIVE' GROUP BY line.sku, line.warehouse_id),
    split AS (
        SELECT sku, warehouse_id, sum(allotted - used)::bigint AS free, sum(used)::bigint AS used
          FROM stock_buckets GROUP BY sku, warehouse_id)
    SELECT COALESCE(s.sku, b.sku) AS sku, COALESCE(s.warehouse_id, b.warehouse_id) AS warehouse_id,
           COALESCE(s.on_hand, 0) AS on_hand, COALESCE(b.on_hand, 0) AS ledger_on_hand,
           COALESCE(s.reserved, 0) - COALESCE(x.free, 0) AS reserved,
           COALESCE(b.reserved, 0) AS ledger_reserved,
           COALESCE(h.units, 0) AS open_units,
           COALESCE(x.used, 0) AS bucket_used, COALESCE(h.bucket_units, 0) AS open_bucket_units
      FROM stock AS s
 FULL JOIN booked AS b USING (sku, warehouse_id)
 LEFT JOIN held AS h
        ON h.sku = COALESCE(s.sku, b.sku) AND h.warehouse_id = COALESCE(s.warehouse_id, b.warehouse_id)
 LEFT JOIN split AS x
        ON x.sku = COALESCE(s.sku, b.sku) AND x.warehouse_id = COALESCE(s.warehouse_id, b.warehouse_id)
    """
)


# The movements in one statement, each valued at its unit cost: the one given, else the row's moving
# average as it is now (units leaving do not change it, so a commit is valued at what the units cost).
# A movement of reserved units only (reserve, release, expire) moves nothing at cost.
_RECORD = text(
    """
    INSERT INTO ledger (at, sku, warehouse_id, kind, on_hand_delta, reserved_delta, order_id, reference,
                        reason, trace_id, unit_cost_minor, value_minor)
    SELECT :at, m.sku, m.warehouse_id, :kind, m.on_hand_delta, m.reserved_delta, :order_id, :reference,
           :reason, :trace_id,
           CASE WHEN m.on_hand_delta = 0 THEN 0 ELSE COALESCE(m.cost, s.unit_cost_minor, 0) END,
           m.on_hand_delta * COALESCE(m.cost, s.unit_cost_minor, 0)
      FROM unnest(CAST(:skus AS text[]), CAST(:warehouses AS text[]), CAST(:on_hand AS bigint[]),
                  CAST(:reserved AS bigint[]), CAST(:costs AS bigint[]))
           WITH ORDINALITY AS m(sku, warehouse_id, on_hand_delta, reserved_delta, cost, n)
      LEFT JOIN stock AS s USING (sku, warehouse_id)
     ORDER BY m.n
    """
)

# what each SKU of an order went out at (its latest commit), for a return to come back at
_SALE_COSTS = text(
    """
    SELECT DISTINCT ON (sku) sku, unit_cost_minor
      FROM ledger
     WHERE order_id = :order_id AND kind = 'commit' AND sku = ANY(CAST(:skus AS text[]))
     ORDER BY sku, entry_id DESC
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
        unit_costs: Sequence[int | None] | None = None,
    ) -> None:
        """Append (sku, warehouse, on_hand_delta, reserved_delta) movements, with the current trace,
        each at its unit cost in `unit_costs` (None, or no list: the row's moving average now)."""
        moved = list(moves)
        if not moved:
            return
        costs = list(unit_costs) if unit_costs is not None else [None] * len(moved)
        if len(costs) != len(moved):
            raise ValueError("one unit cost per movement")
        conn = await self._connect()
        await conn.execute(
            _RECORD,
            {
                "at": now,
                "kind": kind.value,
                "order_id": order_id,
                "reference": reference,
                "reason": reason,
                "trace_id": current_trace_id(),
                "skus": [m[0] for m in moved],
                "warehouses": [m[1] for m in moved],
                "on_hand": [m[2] for m in moved],
                "reserved": [m[3] for m in moved],
                "costs": costs,
            },
        )

    async def sale_costs(self, order_id: str, skus: Sequence[str]) -> dict[str, int]:
        """The unit cost each SKU of the order was committed (shipped) at; SKUs it never shipped are
        left out."""
        conn = await self._connect()
        rows = await conn.execute(_SALE_COSTS, {"order_id": order_id, "skus": list(skus)})
        return {row.sku: row.unit_cost_minor for row in rows}

    async def audit(self) -> list[StockAudit]:
        """Every row beside its sums from the ledger and its units held by active reservations. A split
        row's free bucket units are reserved on the row but held by no order (the ledger records the
        orders' movements, not allotments), so they are left out of its reserved; the units its
        buckets' lines hold must match its buckets' used units."""
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
                bucket_used_units=row.bucket_used,
                open_bucket_units=row.open_bucket_units,
            )
            for row in await conn.execute(_AUDIT)
        ]
