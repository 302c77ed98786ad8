"""Stock rows and the one `reserve` that guards them (SQLAlchemy Core on asyncpg).

Overselling is prevented here, in single conditional statements on rows locked in (sku, warehouse)
order — never check-then-write, never SKIP LOCKED on a stock row, never a network call in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Text, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from services.inventory.domain.model import POOL, Line, Movement, Placement, Reservation, StockRow
from services.inventory.store.connection import Connect
from services.inventory.store.tables import reservation_lines_table, reservations_table, stock_table
from services.kit.tracing import attached, current_trace_id

if TYPE_CHECKING:
    from services.inventory.store.unit_of_work import InventoryUnitOfWork

STOCK_COLUMNS = (
    stock_table.c.sku,
    stock_table.c.warehouse_id,
    stock_table.c.on_hand,
    stock_table.c.reserved,
    stock_table.c.safety_level,
    stock_table.c.normal_level,
    stock_table.c.sellable,
)

_UNNEST = "unnest(CAST(:skus AS text[]), CAST(:warehouses AS text[]), CAST(:quantities AS bigint[]))"

_RESERVE = text(
    f"""
    UPDATE stock AS s
       SET reserved = s.reserved + w.quantity, updated_at = now()
      FROM {_UNNEST} AS w(sku, warehouse_id, quantity)
     WHERE s.sku = w.sku AND s.warehouse_id = w.warehouse_id
       AND s.sellable
       AND s.reserved + w.quantity <= (s.on_hand * :cap) / 10000
 RETURNING s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_level, s.normal_level, s.sellable
    """
)

_SETTLE = text(
    f"""
    UPDATE stock AS s
       SET on_hand = s.on_hand - w.quantity * :deduct,
           reserved = s.reserved - w.quantity,
           updated_at = now()
      FROM {_UNNEST} AS w(sku, warehouse_id, quantity)
     WHERE s.sku = w.sku AND s.warehouse_id = w.warehouse_id
 RETURNING s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_level, s.normal_level, s.sellable
    """
)

_LOCK = text(
    f"""
    SELECT s.sku, s.warehouse_id
      FROM stock AS s
      JOIN {_UNNEST} AS w(sku, warehouse_id, quantity) USING (sku, warehouse_id)
  ORDER BY s.sku, s.warehouse_id
       FOR UPDATE OF s
    """
)

_ARRAYS = (
    bindparam("skus", type_=ARRAY(Text)),
    bindparam("warehouses", type_=ARRAY(Text)),
    bindparam("quantities", type_=ARRAY(BigInteger)),
)

# The common case of a reservation (a new order, enough stock, no safety level crossed) is ONE
# statement, so one round trip and its own transaction: it locks the order's stock rows in
# (sku, warehouse) order, checks every line against the cap (and that no safety level would be
# crossed), and only if all pass inserts the reservation; only if that insert did not meet a live
# reservation of the order does it update stock and write the lines, the ledger entries and the
# outbox event. The stock UPDATE repeats the conditions, so it can never take more than the cap
# even on its own. Whatever did not happen is reported (_Miss) and nothing was written.
_ONE_STATEMENT = """
WITH wanted AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::bigint[]) AS w(sku, warehouse_id, quantity)),
locked AS (
    SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_level, s.sellable
      FROM stock AS s JOIN wanted AS w USING (sku, warehouse_id)
     ORDER BY s.sku, s.warehouse_id
       FOR UPDATE OF s),
checked AS (
    SELECT count(*) FILTER (WHERE l.sellable AND l.reserved + w.quantity <= (l.on_hand * $14) / 10000)
               AS fits,
           count(*) FILTER (WHERE l.safety_level > 0 AND l.on_hand - l.reserved - w.quantity < l.safety_level)
               AS crossing
      FROM locked AS l JOIN wanted AS w USING (sku, warehouse_id)),
reservation AS (
    INSERT INTO reservations (reservation_id, order_id, status, expires_at, created_at, updated_at)
    SELECT $1, $2, 'ACTIVE', $3, $4, $4 FROM checked
     WHERE checked.fits = cardinality($5::text[]) AND checked.crossing = 0
    ON CONFLICT (order_id) WHERE status IN ('ACTIVE', 'COMMITTED') DO NOTHING
    RETURNING reservation_id),
reserved AS (
    UPDATE stock AS s
       SET reserved = s.reserved + w.quantity, updated_at = now()
      FROM wanted AS w, reservation AS r
     WHERE s.sku = w.sku AND s.warehouse_id = w.warehouse_id
       AND s.sellable AND s.reserved + w.quantity <= (s.on_hand * $14) / 10000
    RETURNING s.sku),
lines AS (
    INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity)
    SELECT r.reservation_id, w.sku, w.warehouse_id, w.quantity FROM reservation AS r, wanted AS w),
entries AS (
    INSERT INTO ledger (at, sku, warehouse_id, kind, on_hand_delta, reserved_delta, order_id, trace_id)
    SELECT $4, w.sku, w.warehouse_id, 'reserve', 0, w.quantity, $2, $8 FROM reservation, wanted AS w),
event AS (
    INSERT INTO outbox (event_id, subject, event_type, payload, traceparent, occurred_at)
    SELECT $9, $10, $11, $12, $13, $4 FROM reservation)
SELECT (SELECT fits FROM checked) AS fits,
       (SELECT crossing FROM checked) AS crossing,
       (SELECT count(*) FROM reservation) AS inserted,
       (SELECT count(*) FROM reserved) AS updated
"""


# how long a group of reservations waits for a row lock before it gives up and goes one by one
GROUP_LOCK_TIMEOUT_MS = 250


async def _one_statement(
    driver: Any, reservation: Reservation, row: dict[str, Any], cap_basis_points: int
) -> _Miss | None:
    lines = reservation.lines
    outcome = await driver.fetchrow(
        _ONE_STATEMENT,
        reservation.reservation_id,
        reservation.order_id,
        reservation.expires_at,
        reservation.created_at,
        [line.sku for line in lines],
        [line.warehouse_id for line in lines],
        [line.quantity for line in lines],
        current_trace_id(),
        row["event_id"],
        row["subject"],
        row["event_type"],
        row["payload"],
        row["traceparent"],
        cap_basis_points,
    )
    if outcome["fits"] < len(lines):
        return _Miss.SHORT
    if outcome["crossing"]:
        return _Miss.CROSSING
    if not outcome["inserted"]:
        return _Miss.HELD
    if outcome["updated"] != len(lines):  # cannot happen: the rows are locked
        raise RuntimeError("reservation written without its stock update")
    reservation.events.clear()
    return None


class _Miss(StrEnum):
    """Why the one statement stepped aside: a live reservation, short stock, or a safety level crossed."""

    HELD = "held"
    SHORT = "short"
    CROSSING = "crossing"


# availability, on every order's routing: one prepared statement on the driver
_LEVELS = """
SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_level, s.normal_level, s.sellable,
       COALESCE(x.units, 0) AS expired_units
  FROM stock AS s
  LEFT JOIN (SELECT line.sku, line.warehouse_id, sum(line.quantity)::bigint AS units
               FROM reservations AS r JOIN reservation_lines AS line USING (reservation_id)
              WHERE r.status = 'ACTIVE' AND r.expires_at <= $3 AND line.sku = ANY($1::text[])
              GROUP BY line.sku, line.warehouse_id) AS x USING (sku, warehouse_id)
 WHERE s.sku = ANY($1::text[]) AND (cardinality($2::text[]) = 0 OR s.warehouse_id = ANY($2::text[]))
 ORDER BY s.sku, s.warehouse_id
"""


def stock_row(row: Any) -> StockRow:
    return StockRow(
        sku=row["sku"],
        warehouse_id=row["warehouse_id"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        safety_level=row["safety_level"],
        normal_level=row["normal_level"],
        sellable=row["sellable"],
    )


def _rows(result: Any) -> list[StockRow]:
    return [stock_row(row._mapping) for row in result]


def _arrays(lines: Sequence[Line]) -> dict[str, list[Any]]:
    return {
        "skus": [line.sku for line in lines],
        "warehouses": [line.warehouse_id for line in lines],
        "quantities": [line.quantity for line in lines],
    }


class StockRepository:
    def __init__(self, uow: InventoryUnitOfWork) -> None:
        self._uow = uow
        self._connect: Connect = uow.connection

    async def reserve(
        self, reservation: Reservation, cap_basis_points: int, *, fast: bool = True
    ) -> tuple[Placement, list[StockRow]]:
        """Write a new reservation, all its lines or none, with its ledger entries and its events.

        `fast`: try the one-statement path first; it steps aside for a live reservation of the order
        and for a safety level crossed, and the general path below then writes row by row (after the
        events, so the hot rows stay locked briefly) and returns the updated rows for safety stock.
        SHORT and HELD wrote nothing (after SHORT this unit of work has been rolled back).
        """
        if fast:
            miss = await self._reserve_in_one_statement(reservation, cap_basis_points)
            if miss is None:
                return Placement.RESERVED, []
            if miss is _Miss.SHORT:
                return Placement.SHORT, []
        if not await self._insert(reservation):
            return Placement.HELD, []
        await self._uow.ledger.record(
            Movement.RESERVE,
            reservation.created_at,
            ((line.sku, line.warehouse_id, 0, line.quantity) for line in reservation.lines),
            order_id=reservation.order_id,
        )
        self._uow.emit(*reservation.events)
        reservation.events.clear()
        await self._uow.flush_events()
        updated = await self.reserve_rows(reservation.lines, cap_basis_points)
        if len(updated) != len(reservation.lines):
            await self._uow.rollback()
            return Placement.SHORT, []
        return Placement.RESERVED, updated

    async def _reserve_in_one_statement(
        self, reservation: Reservation, cap_basis_points: int
    ) -> _Miss | None:
        [event] = reservation.events
        row = self._uow.event_row(event)  # before the connection is checked out: it is held briefly
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        return await _one_statement(driver, reservation, row, cap_basis_points)

    async def reserve_together(
        self, reservations: Sequence[Reservation], cap_basis_points: int, traceparents: Sequence[str]
    ) -> list[Placement | None]:
        """New reservations, each by the one statement, all in one transaction and in the order given
        (the caller sorts them by row, the order every path locks rows in), each in its own trace.
        Per reservation: RESERVED, SHORT (nothing written), or None: stepped aside having written
        nothing, for `reserve` to take (held by the order already, a safety level crossed). A failure
        rolls every one back."""
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        placed: list[Placement | None] = []
        async with driver.transaction():
            # a row another transaction holds for long fails the group (each is then placed alone,
            # waiting only for its own row) rather than stall every reservation queued behind it
            await driver.execute(f"SET LOCAL lock_timeout = '{GROUP_LOCK_TIMEOUT_MS}ms'")
            for reservation, traceparent in zip(reservations, traceparents, strict=True):
                with attached(traceparent):
                    row = self._uow.event_row(reservation.events[0])
                    miss = await _one_statement(driver, reservation, row, cap_basis_points)
                placed.append(
                    Placement.RESERVED if miss is None else Placement.SHORT if miss is _Miss.SHORT else None
                )
        return placed

    async def _insert(self, reservation: Reservation) -> bool:
        """False when the order already holds a live (active or committed) reservation."""
        conn = await self._connect()
        inserted = await conn.execute(
            insert(reservations_table)
            .values(
                reservation_id=reservation.reservation_id,
                order_id=reservation.order_id,
                status=reservation.status.value,
                expires_at=reservation.expires_at,
                created_at=reservation.created_at,
                updated_at=reservation.created_at,
            )
            .on_conflict_do_nothing(
                index_elements=["order_id"], index_where=text("status IN ('ACTIVE', 'COMMITTED')")
            )
            .returning(reservations_table.c.reservation_id)
        )
        if inserted.first() is None:
            return False
        await conn.execute(
            reservation_lines_table.insert(),
            [
                {
                    "reservation_id": reservation.reservation_id,
                    "sku": line.sku,
                    "warehouse_id": line.warehouse_id,
                    "quantity": line.quantity,
                }
                for line in reservation.lines
            ],
        )
        return True

    async def lock_rows(self, lines: Sequence[Line]) -> None:
        """One order's rows, locked in a fixed order so that overlapping orders never deadlock."""
        conn = await self._connect()
        if len(lines) > 1:
            await conn.execute(_LOCK.bindparams(*_ARRAYS), _arrays(lines))

    async def reserve_rows(self, lines: Sequence[Line], cap_basis_points: int) -> list[StockRow]:
        """The one conditional statement that reserves; a row without room is simply not updated."""
        conn = await self._connect()
        await self.lock_rows(lines)
        result = await conn.execute(
            _RESERVE.bindparams(*_ARRAYS), {**_arrays(lines), "cap": cap_basis_points}
        )
        return _rows(result)

    async def settle(self, lines: Sequence[Line], *, deduct: bool) -> list[StockRow]:
        """Commit (deduct from on hand) or release (give back) reserved units."""
        conn = await self._connect()
        await self.lock_rows(lines)
        result = await conn.execute(
            _SETTLE.bindparams(*_ARRAYS), {**_arrays(lines), "deduct": 1 if deduct else 0}
        )
        return _rows(result)

    async def move(
        self, reservation_id: str, moving: Line, to_warehouse: str, cap_basis_points: int
    ) -> list[StockRow] | None:
        """Reserve the line at the target and release it at the source, or (None) change nothing."""
        conn = await self._connect()
        target = Line(moving.sku, to_warehouse, moving.quantity)
        await self.lock_rows(sorted([moving, target]))
        reserved = await self.reserve_rows([target], cap_basis_points)
        if not reserved:
            return None
        released = await self.settle([moving], deduct=False)
        await conn.execute(
            update(reservation_lines_table)
            .where(
                reservation_lines_table.c.reservation_id == reservation_id,
                reservation_lines_table.c.sku == moving.sku,
                reservation_lines_table.c.warehouse_id == moving.warehouse_id,
            )
            .values(warehouse_id=to_warehouse)
        )
        return [*reserved, *released]

    async def get(self, sku: str, warehouse_id: str) -> StockRow | None:
        conn = await self._connect()
        row = (
            await conn.execute(
                select(*STOCK_COLUMNS).where(
                    stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id
                )
            )
        ).first()
        return None if row is None else stock_row(row._mapping)

    async def lock(self, sku: str, warehouse_id: str) -> tuple[StockRow, int]:
        """The row (created empty if missing) locked for this transaction, with its WMS count version."""
        conn = await self._connect()
        await conn.execute(
            insert(stock_table).values(sku=sku, warehouse_id=warehouse_id).on_conflict_do_nothing()
        )
        row = (
            await conn.execute(
                select(*STOCK_COLUMNS, stock_table.c.count_version)
                .where(stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id)
                .with_for_update()
            )
        ).one()
        return stock_row(row._mapping), row.count_version

    async def unit_cost(self, sku: str, warehouse_id: str) -> int:
        """The row's moving average unit cost (0 when none was given or the row is new)."""
        conn = await self._connect()
        found = await conn.execute(
            select(stock_table.c.unit_cost_minor).where(
                stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id
            )
        )
        return int(found.scalar() or 0)

    async def change_on_hand(
        self,
        sku: str,
        warehouse_id: str,
        delta: int,
        *,
        count_version: int | None = None,
        unit_cost: int | None = None,
    ) -> StockRow:
        """On hand moves by `delta`; `unit_cost` is the row's new moving average, when it changes."""
        conn = await self._connect()
        values: dict[str, Any] = {} if count_version is None else {"count_version": count_version}
        if unit_cost is not None:
            values["unit_cost_minor"] = unit_cost
        result = await conn.execute(
            update(stock_table)
            .where(stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id)
            .values(on_hand=stock_table.c.on_hand + delta, updated_at=func.now(), **values)
            .returning(*STOCK_COLUMNS)
        )
        return stock_row(result.one()._mapping)

    async def set_levels(self, sku: str, warehouse_id: str, normal_level: int, safety_level: int) -> StockRow:
        conn = await self._connect()
        result = await conn.execute(
            insert(stock_table)
            .values(sku=sku, warehouse_id=warehouse_id, normal_level=normal_level, safety_level=safety_level)
            .on_conflict_do_update(
                index_elements=["sku", "warehouse_id"],
                set_={"normal_level": normal_level, "safety_level": safety_level, "updated_at": func.now()},
            )
            .returning(*STOCK_COLUMNS)
        )
        return stock_row(result.one()._mapping)

    async def pool(self, sku: str) -> StockRow:
        """A SKU across all its warehouses, as one row (warehouse_id POOL) for pool-scope safety stock."""
        conn = await self._connect()
        row = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(stock_table.c.on_hand), 0).label("on_hand"),
                    func.coalesce(func.sum(stock_table.c.reserved), 0).label("reserved"),
                    func.coalesce(func.sum(stock_table.c.safety_level), 0).label("safety_level"),
                    func.coalesce(func.sum(stock_table.c.normal_level), 0).label("normal_level"),
                    func.coalesce(func.bool_and(stock_table.c.sellable), True).label("sellable"),
                ).where(stock_table.c.sku == sku)
            )
        ).one()
        return StockRow(
            sku,
            POOL,
            int(row.on_hand),
            int(row.reserved),
            int(row.safety_level),
            int(row.normal_level),
            row.sellable,
        )

    async def set_sellable(self, sku: str, warehouse_id: str, sellable: bool) -> bool:
        """Flip the flag (every row of the SKU for POOL); only a transaction that flips a row gets True."""
        conn = await self._connect()
        scope = [stock_table.c.sku == sku]
        if warehouse_id != POOL:
            scope.append(stock_table.c.warehouse_id == warehouse_id)
        result = await conn.execute(
            update(stock_table)
            .where(*scope, stock_table.c.sellable.is_not(sellable))
            .values(sellable=sellable)
            .returning(stock_table.c.sku)
        )
        return result.first() is not None

    async def levels(
        self, skus: Sequence[str], warehouses: Sequence[str], now: datetime
    ) -> list[tuple[StockRow, int]]:
        """Stock rows with the units of their expired-but-not-yet-swept reservations, in one prepared
        statement on this unit of work's connection (a second one per request would starve the pool)."""
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        rows = await driver.fetch(_LEVELS, list(skus), list(warehouses), now)
        return [(stock_row(row), row["expired_units"]) for row in rows]
