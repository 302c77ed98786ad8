"""Stock rows and the one `reserve` that guards them (SQLAlchemy Core on asyncpg).

Overselling is prevented here, in single conditional statements on rows locked in (sku, warehouse)
order — never check-then-write, never SKIP LOCKED on a stock row, never a network call in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import BigInteger, Text, bindparam, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from services.inventory.domain.model import (
    POOL,
    BucketUnits,
    Line,
    Movement,
    Placement,
    Reservation,
    StockBucket,
    StockRow,
    allotment_room,
    bucket_hash,
    first_bucket,
    refill_size,
    reservable,
    split_evenly,
)
from services.inventory.store.connection import Connect
from services.inventory.store.tables import (
    reservation_lines_table,
    reservations_table,
    stock_buckets_table,
    stock_table,
)
from services.kit.tracing import attached, current_trace_id

if TYPE_CHECKING:
    from services.inventory.store.unit_of_work import InventoryUnitOfWork

# A split row's reserved counts its buckets' free units; what orders hold is reserved less those.
_BUCKETS = stock_buckets_table.c
_FREE = (
    select(cast(func.coalesce(func.sum(_BUCKETS.allotted - _BUCKETS.used), 0), BigInteger))
    .where(_BUCKETS.sku == stock_table.c.sku, _BUCKETS.warehouse_id == stock_table.c.warehouse_id)
    .correlate(stock_table)
    .scalar_subquery()
)
_HELD = (
    "s.reserved - COALESCE((SELECT sum(b.allotted - b.used)::bigint FROM stock_buckets AS b"
    " WHERE b.sku = s.sku AND b.warehouse_id = s.warehouse_id), 0)"
)
_ROW = f"s.sku, s.warehouse_id, s.on_hand, {_HELD} AS reserved, s.safety_level, s.normal_level, s.sellable"

STOCK_COLUMNS = (
    stock_table.c.sku,
    stock_table.c.warehouse_id,
    stock_table.c.on_hand,
    (stock_table.c.reserved - _FREE).label("reserved"),
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
 RETURNING {_ROW}
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
 RETURNING {_ROW}
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

# The buckets' free units back to their rows (whose locks the transaction holds already), buckets locked
# in (sku, warehouse, bucket) order: before on hand falls, the row stops selling, its safety level or its
# split changes, or a reservation through the row comes up short.
_TAKE_BACK = text(
    """
    WITH locked AS (
        SELECT b.sku, b.warehouse_id, b.bucket, b.allotted - b.used AS free
          FROM stock_buckets AS b
          JOIN unnest(CAST(:skus AS text[]), CAST(:warehouses AS text[])) AS w(sku, warehouse_id)
            ON w.sku = b.sku AND w.warehouse_id = b.warehouse_id
         ORDER BY b.sku, b.warehouse_id, b.bucket
           FOR UPDATE OF b),
    emptied AS (
        UPDATE stock_buckets AS b SET allotted = b.used
          FROM locked AS l
         WHERE b.sku = l.sku AND b.warehouse_id = l.warehouse_id AND b.bucket = l.bucket AND l.free > 0),
    returned AS (
        SELECT sku, warehouse_id, sum(free)::bigint AS free FROM locked
         GROUP BY sku, warehouse_id HAVING sum(free) > 0)
    UPDATE stock AS s SET reserved = s.reserved - r.free, updated_at = now()
      FROM returned AS r
     WHERE s.sku = r.sku AND s.warehouse_id = r.warehouse_id
 RETURNING r.free
    """
)

# Units of settled lines leave their buckets (rows locked first): a commit takes them from the bucket's
# allotment too; a release gives them back to the bucket, or to the row when the bucket no longer takes
# allotments or the row does not sell (free units are only ever in a selling row's live buckets).
_SETTLE_BUCKETS = text(
    """
    WITH w AS (
        SELECT * FROM unnest(CAST(:skus AS text[]), CAST(:warehouses AS text[]), CAST(:buckets AS int[]),
                             CAST(:quantities AS bigint[])) AS w(sku, warehouse_id, bucket, quantity)),
    locked AS (
        SELECT b.sku, b.warehouse_id, b.bucket, w.quantity,
               (b.bucket >= s.buckets OR NOT s.sellable) AS to_row
          FROM stock_buckets AS b
          JOIN w ON w.sku = b.sku AND w.warehouse_id = b.warehouse_id AND w.bucket = b.bucket
          JOIN stock AS s ON s.sku = b.sku AND s.warehouse_id = b.warehouse_id
         ORDER BY b.sku, b.warehouse_id, b.bucket
           FOR UPDATE OF b)
    UPDATE stock_buckets AS b
       SET used = b.used - l.quantity,
           allotted = b.allotted - CASE WHEN :deduct = 1 OR l.to_row THEN l.quantity ELSE 0 END
      FROM locked AS l
     WHERE b.sku = l.sku AND b.warehouse_id = l.warehouse_id AND b.bucket = l.bucket
 RETURNING b.sku, b.warehouse_id, CASE WHEN :deduct = 0 AND l.to_row THEN l.quantity ELSE 0 END AS to_row
    """
)

# A new split: its row's room shared among the buckets (the row, locked, counts it as reserved)
_SPLIT = text(
    """
    WITH shares AS (
        SELECT * FROM unnest(CAST(:shares AS bigint[])) WITH ORDINALITY AS x(units, n)),
    allotted AS (
        INSERT INTO stock_buckets (sku, warehouse_id, bucket, allotted, used)
        SELECT :sku, :warehouse_id, n - 1, units, 0 FROM shares
        ON CONFLICT (sku, warehouse_id, bucket)
        DO UPDATE SET allotted = stock_buckets.allotted + EXCLUDED.allotted)
    UPDATE stock
       SET reserved = reserved + (SELECT COALESCE(sum(units), 0) FROM shares), buckets = :buckets,
           updated_at = now()
     WHERE sku = :sku AND warehouse_id = :warehouse_id
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
# even on its own. Whatever did not happen is reported (_Miss) and nothing was written. A row split into
# buckets is neither locked nor reserved here: it steps aside (BUCKETED) for its buckets.
_ONE_STATEMENT = """
WITH wanted AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::bigint[]) AS w(sku, warehouse_id, quantity)),
locked AS (
    SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved, s.safety_level, s.sellable
      FROM stock AS s JOIN wanted AS w USING (sku, warehouse_id)
     WHERE s.buckets = 0
     ORDER BY s.sku, s.warehouse_id
       FOR UPDATE OF s),
split AS (
    SELECT count(*) AS lines FROM stock AS s JOIN wanted AS w USING (sku, warehouse_id) WHERE s.buckets > 0),
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
       (SELECT lines FROM split) AS split,
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
    if outcome["split"]:
        return _Miss.BUCKETED
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
    SOLD_OUT = "sold_out"  # short, and no hold past its time on the row
    CROSSING = "crossing"
    BUCKETED = "bucketed"  # a line's row is split into buckets
    UNSPLIT = "unsplit"  # the row taken for split is not (any more)


# A one-line reservation of a split row is ONE statement too, and locks no stock row: it picks the first
# bucket with room for the line in a rotation that starts at the bucket the order id hashes to (the rest
# in turn when that one is short), takes the units from it with a conditional UPDATE, and only if that
# updated the bucket inserts the reservation, the line (naming the bucket), the ledger entry and the
# outbox event. It locks one bucket only (a statement that locked buckets one after another while
# looking for room would deadlock with others doing the same). The UPDATE repeats the condition and the
# bucket's CHECK refuses used > allotted. An order that already holds a live reservation takes nothing;
# one racing another reservation of the same order fails on the unique index, writing nothing. When no
# bucket has room, nothing is written and the row's figures come back (read, not locked), with whether
# any hold past its time sits on the row (a sold-out answer then needs nothing freed first).
_FROM_BUCKET = """
WITH live AS (
    SELECT 1 FROM reservations WHERE order_id = $2 AND status IN ('ACTIVE', 'COMMITTED') LIMIT 1),
chosen AS (
    SELECT b.bucket
      FROM stock_buckets AS b JOIN stock AS s ON s.sku = b.sku AND s.warehouse_id = b.warehouse_id
     WHERE b.sku = $5::text AND b.warehouse_id = $6::text AND b.allotted - b.used >= $7::bigint
       AND s.sellable AND s.buckets > 0 AND NOT EXISTS (SELECT 1 FROM live)
     ORDER BY (b.bucket + s.buckets - $14::bigint % NULLIF(s.buckets, 0)) % NULLIF(s.buckets, 0), b.bucket
     LIMIT 1),
taken AS (
    UPDATE stock_buckets AS b SET used = b.used + $7::bigint
      FROM chosen AS c
     WHERE b.sku = $5::text AND b.warehouse_id = $6::text AND b.bucket = c.bucket
       AND b.allotted - b.used >= $7::bigint
    RETURNING b.bucket),
reservation AS (
    INSERT INTO reservations (reservation_id, order_id, status, expires_at, created_at, updated_at)
    SELECT $1, $2, 'ACTIVE', $3, $4, $4 FROM taken
    RETURNING reservation_id),
lines AS (
    INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity, bucket)
    SELECT r.reservation_id, $5::text, $6::text, $7::bigint, t.bucket FROM reservation AS r, taken AS t),
entries AS (
    INSERT INTO ledger (at, sku, warehouse_id, kind, on_hand_delta, reserved_delta, order_id, trace_id)
    SELECT $4, $5::text, $6::text, 'reserve', 0, $7::bigint, $2, $8 FROM reservation),
event AS (
    INSERT INTO outbox (event_id, subject, event_type, payload, traceparent, occurred_at)
    SELECT $9, $10, $11, $12, $13, $4 FROM reservation)
SELECT (SELECT count(*) FROM live) AS held,
       (SELECT count(*) FROM chosen) AS chosen,
       (SELECT count(*) FROM taken) AS taken,
       (SELECT count(*) FROM reservation) AS inserted,
       s.buckets, s.on_hand, s.reserved, s.safety_level, s.sellable,
       COALESCE((SELECT sum(b.allotted - b.used) FROM stock_buckets AS b
                  WHERE b.sku = $5::text AND b.warehouse_id = $6::text), 0)::bigint AS free,
       CASE WHEN NOT EXISTS (SELECT 1 FROM taken) THEN EXISTS (
           SELECT 1 FROM reservations AS r JOIN reservation_lines AS l USING (reservation_id)
            WHERE r.status = 'ACTIVE' AND r.expires_at <= $4
              AND l.sku = $5::text AND l.warehouse_id = $6::text)
       END AS expired
  FROM (SELECT 1) AS one LEFT JOIN stock AS s ON s.sku = $5::text AND s.warehouse_id = $6::text
"""

# A dry bucket's new allotment, taken from its row (locked) only within the cap and above the safety level
_REFILL = """
WITH granted AS (
    UPDATE stock SET reserved = reserved + $4::bigint, updated_at = now()
     WHERE sku = $1::text AND warehouse_id = $2::text AND sellable AND buckets > $3::int
       AND reserved + $4::bigint <= (on_hand * $5::bigint) / 10000
       AND (safety_level = 0 OR on_hand - reserved - $4::bigint >= safety_level)
    RETURNING sku, warehouse_id)
INSERT INTO stock_buckets (sku, warehouse_id, bucket, allotted, used)
SELECT sku, warehouse_id, $3::int, $4::bigint, 0 FROM granted
ON CONFLICT (sku, warehouse_id, bucket) DO UPDATE SET allotted = stock_buckets.allotted + EXCLUDED.allotted
RETURNING bucket
"""

# a one-line reservation of a split row tries its buckets this often (another may take a bucket's last
# units between its pick and its update), refilling a dry one at most REFILLS times, before it goes
# through the row
BUCKET_TRIES = 8
REFILLS = 2


# availability, on every order's routing: one prepared statement on the driver; a split row's free bucket
# units are available as if they were in the row
_LEVELS = """
SELECT s.sku, s.warehouse_id, s.on_hand, s.reserved - COALESCE(f.free, 0) AS reserved,
       s.safety_level, s.normal_level, s.sellable, COALESCE(x.units, 0) AS expired_units
  FROM stock AS s
  LEFT JOIN (SELECT b.sku, b.warehouse_id, sum(b.allotted - b.used)::bigint AS free
               FROM stock_buckets AS b WHERE b.sku = ANY($1::text[])
              GROUP BY b.sku, b.warehouse_id) AS f USING (sku, warehouse_id)
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


def _arrays(lines: Sequence[Line] | Sequence[BucketUnits]) -> dict[str, list[Any]]:
    return {
        "skus": [line.sku for line in lines],
        "warehouses": [line.warehouse_id for line in lines],
        "quantities": [line.quantity for line in lines],
    }


_GROUP_PLACEMENTS: dict[_Miss | None, Placement] = {
    None: Placement.RESERVED,
    _Miss.SHORT: Placement.SHORT,
    _Miss.BUCKETED: Placement.BUCKETED,
}


class StockRepository:
    def __init__(self, uow: InventoryUnitOfWork) -> None:
        self._uow = uow
        self._connect: Connect = uow.connection

    async def reserve(
        self, reservation: Reservation, cap_basis_points: int, *, fast: bool = True, bucketed: bool = False
    ) -> tuple[Placement, list[StockRow]]:
        """Write a new reservation, all its lines or none, with its ledger entries and its events.

        `fast`: try the one-statement path first; it steps aside for a live reservation of the order,
        for a safety level crossed and for a row split into buckets (a one-line reservation of one then
        takes from a bucket, refilling a dry one from the row; `bucketed`: the row is known to be split,
        try its buckets at once). The general path below then writes row by row (after the events, so the
        hot rows stay locked briefly) and returns the updated rows for safety stock.
        SHORT, SOLD_OUT and HELD wrote nothing (after SHORT this unit of work has been rolled back).
        """
        if fast:
            one_line = len(reservation.lines) == 1
            miss: _Miss | None = _Miss.BUCKETED
            if not (bucketed and one_line):
                miss = await self._reserve_in_one_statement(reservation, cap_basis_points)
            if miss is _Miss.BUCKETED and one_line:
                miss = await self._reserve_from_buckets(reservation, cap_basis_points)
                if miss is _Miss.UNSPLIT:
                    miss = await self._reserve_in_one_statement(reservation, cap_basis_points)
            if miss is None:
                return Placement.RESERVED, []
            if miss is _Miss.SHORT:
                return Placement.SHORT, []
            if miss is _Miss.SOLD_OUT:
                return Placement.SOLD_OUT, []
            if miss is _Miss.HELD:
                return Placement.HELD, []
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

    async def _reserve_from_buckets(self, reservation: Reservation, cap_basis_points: int) -> _Miss | None:
        """A one-line reservation from its row's buckets, each try one statement of its own. A dry bucket
        is refilled from the row (a short transaction of its own) and the line tried again; SHORT when
        the row and its buckets together cannot cover the line (read, not locked, as any shortage answer
        is); BUCKETED when they could but no bucket can: the general path then takes the buckets' free
        units back into the row and reserves there, as if the row had never been split."""
        [line] = reservation.lines
        [event] = reservation.events
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        refills = 0
        for _ in range(BUCKET_TRIES):
            row = self._uow.event_row(event)
            try:
                outcome = await driver.fetchrow(
                    _FROM_BUCKET,
                    reservation.reservation_id,
                    reservation.order_id,
                    reservation.expires_at,
                    reservation.created_at,
                    line.sku,
                    line.warehouse_id,
                    line.quantity,
                    current_trace_id(),
                    row["event_id"],
                    row["subject"],
                    row["event_type"],
                    row["payload"],
                    row["traceparent"],
                    bucket_hash(reservation.order_id),
                )
            except asyncpg.UniqueViolationError:
                return _Miss.HELD  # another reservation of the order came first; this one wrote nothing
            if outcome["held"]:
                return _Miss.HELD
            if outcome["taken"]:
                if outcome["inserted"] != 1:  # cannot happen: the insert follows the update
                    raise RuntimeError("bucket taken without its reservation")
                reservation.events.clear()
                return None
            if outcome["chosen"]:
                continue  # another reservation took the bucket's last units first
            if outcome["buckets"] is None:
                return _Miss.SHORT  # no stock row: the shortage names it
            if not outcome["buckets"]:
                return _Miss.UNSPLIT
            on_hand, reserved, sellable = outcome["on_hand"], outcome["reserved"], outcome["sellable"]
            if reservable(on_hand, reserved, cap_basis_points, sellable) + outcome["free"] < line.quantity:
                return _Miss.SOLD_OUT if outcome["expired"] is False else _Miss.SHORT
            if refills == REFILLS or not await self._refill(
                line, first_bucket(reservation.order_id, outcome["buckets"]), cap_basis_points
            ):
                break
            refills += 1
        return _Miss.BUCKETED

    async def _refill(self, line: Line, bucket: int, cap_basis_points: int) -> bool:
        """A new allotment for the bucket from its row, locked: its share of the row's room (never under
        the safety level), at least the line's quantity; False when the row cannot spare that."""
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        async with driver.transaction():
            row = await driver.fetchrow(
                "SELECT on_hand, reserved, safety_level, sellable, buckets FROM stock"
                " WHERE sku = $1 AND warehouse_id = $2 FOR UPDATE",
                line.sku,
                line.warehouse_id,
            )
            if row is None or not row["buckets"]:
                return False
            room = allotment_room(
                row["on_hand"], row["reserved"], row["safety_level"], row["sellable"], cap_basis_points
            )
            units = refill_size(room, row["buckets"], line.quantity)
            if not units:
                return False
            granted = await driver.fetchval(
                _REFILL, line.sku, line.warehouse_id, bucket % row["buckets"], units, cap_basis_points
            )
        return granted is not None

    async def reserve_together(
        self, reservations: Sequence[Reservation], cap_basis_points: int, traceparents: Sequence[str]
    ) -> list[Placement | None]:
        """New reservations, each by the one statement, all in one transaction and in the order given
        (the caller sorts them by row, the order every path locks rows in), each in its own trace.
        Per reservation: RESERVED, SHORT (nothing written), BUCKETED (nothing written: a row split into
        buckets, whose reservations go one by one, each to its bucket: together they would lock several
        buckets in no fixed order), or None: stepped aside having written nothing, for `reserve` to take
        (held by the order already, a safety level crossed). A failure rolls every one back."""
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
                placed.append(_GROUP_PLACEMENTS.get(miss))
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
        """The one conditional statement that reserves; a row without room is simply not updated. A row
        that comes up short takes its buckets' free units back (if split) and is tried once more."""
        conn = await self._connect()
        await self.lock_rows(lines)
        statement = _RESERVE.bindparams(*_ARRAYS)
        rows = _rows(await conn.execute(statement, {**_arrays(lines), "cap": cap_basis_points}))
        reserved = {row.key for row in rows}
        short = [line for line in lines if line.key not in reserved]
        if short and await self.take_back(short):
            rows += _rows(await conn.execute(statement, {**_arrays(short), "cap": cap_basis_points}))
        return rows

    async def take_back(self, lines: Sequence[Line]) -> int:
        """The free units of the lines' rows' buckets back into the rows, rows locked first; how many."""
        conn = await self._connect()
        await conn.execute(_LOCK.bindparams(*_ARRAYS), _arrays(lines))
        returned = await conn.execute(
            _TAKE_BACK.bindparams(
                bindparam("skus", type_=ARRAY(Text)), bindparam("warehouses", type_=ARRAY(Text))
            ),
            {"skus": [line.sku for line in lines], "warehouses": [line.warehouse_id for line in lines]},
        )
        return sum(row.free for row in returned)

    async def settle(
        self, lines: Sequence[Line], *, deduct: bool, buckets: Sequence[BucketUnits] = ()
    ) -> list[StockRow]:
        """Commit (deduct from on hand) or release (give back) reserved units. `buckets`: the lines' units
        taken from buckets; a release gives those back to their buckets, not to the rows."""
        conn = await self._connect()
        if not buckets:
            await self.lock_rows(lines)
        else:
            await conn.execute(_LOCK.bindparams(*_ARRAYS), _arrays(lines))
            settled = await conn.execute(
                _SETTLE_BUCKETS.bindparams(*_ARRAYS, bindparam("buckets", type_=ARRAY(BigInteger))),
                {
                    **_arrays(buckets),
                    "buckets": [units.bucket for units in buckets],
                    "deduct": 1 if deduct else 0,
                },
            )
            if not deduct:
                from_rows = dict.fromkeys((line.key for line in lines), 0)
                for units in buckets:
                    from_rows[units.key] = from_rows.get(units.key, 0) - units.quantity
                for row in settled:
                    from_rows[(row.sku, row.warehouse_id)] += row.to_row
                lines = [
                    Line(line.sku, line.warehouse_id, line.quantity + from_rows[line.key]) for line in lines
                ]
        result = await conn.execute(
            _SETTLE.bindparams(*_ARRAYS), {**_arrays(lines), "deduct": 1 if deduct else 0}
        )
        return _rows(result)

    async def move(
        self,
        reservation_id: str,
        moving: Line,
        to_warehouse: str,
        cap_basis_points: int,
        bucket: int | None = None,
    ) -> list[StockRow] | None:
        """Reserve the line at the target and release it at the source (to its `bucket`, when it took
        from one), or (None) change nothing."""
        conn = await self._connect()
        target = Line(moving.sku, to_warehouse, moving.quantity)
        await self.lock_rows(sorted([moving, target]))
        reserved = await self.reserve_rows([target], cap_basis_points)
        if not reserved:
            return None
        taken = (
            () if bucket is None else [BucketUnits(moving.sku, moving.warehouse_id, bucket, moving.quantity)]
        )
        released = await self.settle([moving], deduct=False, buckets=taken)
        await conn.execute(
            update(reservation_lines_table)
            .where(
                reservation_lines_table.c.reservation_id == reservation_id,
                reservation_lines_table.c.sku == moving.sku,
                reservation_lines_table.c.warehouse_id == moving.warehouse_id,
            )
            .values(warehouse_id=to_warehouse, bucket=None)
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
        """On hand moves by `delta`; `unit_cost` is the row's new moving average, when it changes. Before
        on hand falls, the buckets' free units go back to the row (the caller holds its lock)."""
        conn = await self._connect()
        if delta < 0:
            await self.take_back([Line(sku, warehouse_id, 0)])
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
        """New levels; a split row's free bucket units go back to it (they were allotted above the old
        safety level), to be allotted again above the new one."""
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
        row = stock_row(result.one()._mapping)
        await self.take_back([Line(sku, warehouse_id, 0)])
        return row

    async def pool(self, sku: str) -> StockRow:
        """A SKU across all its warehouses, as one row (warehouse_id POOL) for pool-scope safety stock."""
        conn = await self._connect()
        row = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(stock_table.c.on_hand), 0).label("on_hand"),
                    cast(func.coalesce(func.sum(stock_table.c.reserved - _FREE), 0), BigInteger).label(
                        "reserved"
                    ),
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
        """Flip the flag (every row of the SKU for POOL); only a transaction that flips a row gets True.
        A row that stops selling takes its buckets' free units back."""
        conn = await self._connect()
        scope = [stock_table.c.sku == sku]
        if warehouse_id != POOL:
            scope.append(stock_table.c.warehouse_id == warehouse_id)
        flipped = (
            await conn.execute(
                update(stock_table)
                .where(*scope, stock_table.c.sellable.is_not(sellable))
                .values(sellable=sellable)
                .returning(stock_table.c.sku, stock_table.c.warehouse_id)
            )
        ).all()
        if flipped and not sellable:
            await self.take_back(sorted(Line(row.sku, row.warehouse_id, 0) for row in flipped))
        return bool(flipped)

    async def split(self, sku: str, warehouse_id: str, buckets: int, cap_basis_points: int) -> StockRow:
        """Split the row (locked by the caller) into `buckets` (0: not split): every bucket's free units
        back to the row, then the row's room shared evenly among the new buckets. Units that lines hold
        stay in their buckets until they are committed or released (to the row, once that bucket no
        longer takes allotments)."""
        conn = await self._connect()
        row = Line(sku, warehouse_id, 0)
        await self.take_back([row])
        current, _ = await self.lock(sku, warehouse_id)
        found = await conn.execute(
            select(stock_table.c.reserved).where(
                stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id
            )
        )
        room = allotment_room(
            current.on_hand, found.scalar_one(), current.safety_level, current.sellable, cap_basis_points
        )
        shares = split_evenly(room, buckets) if buckets else []
        await conn.execute(
            _SPLIT.bindparams(bindparam("shares", type_=ARRAY(BigInteger))),
            {"shares": shares, "sku": sku, "warehouse_id": warehouse_id, "buckets": buckets},
        )
        return current

    async def buckets(self, sku: str, warehouse_id: str) -> tuple[int, list[StockBucket]]:
        """How many buckets the row takes allotments in, and every bucket's (bucket, allotted, used)."""
        conn = await self._connect()
        count = await conn.execute(
            select(stock_table.c.buckets).where(
                stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id
            )
        )
        rows = await conn.execute(
            select(_BUCKETS.bucket, _BUCKETS.allotted, _BUCKETS.used)
            .where(_BUCKETS.sku == sku, _BUCKETS.warehouse_id == warehouse_id)
            .order_by(_BUCKETS.bucket)
        )
        return int(count.scalar() or 0), [StockBucket(row.bucket, row.allotted, row.used) for row in rows]

    async def levels(
        self, skus: Sequence[str], warehouses: Sequence[str], now: datetime
    ) -> list[tuple[StockRow, int]]:
        """Stock rows with the units of their expired-but-not-yet-swept reservations, in one prepared
        statement on this unit of work's connection (a second one per request would starve the pool)."""
        conn = await self._connect()
        driver: Any = (await conn.get_raw_connection()).driver_connection
        rows = await driver.fetch(_LEVELS, list(skus), list(warehouses), now)
        return [(stock_row(row), row["expired_units"]) for row in rows]
