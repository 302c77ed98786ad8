"""Inventory's tables and the SQL that guards them (SQLAlchemy Core on asyncpg).

Overselling is prevented here, in single conditional statements on rows locked in (sku, warehouse)
order — never check-then-write, never SKIP LOCKED on a stock row, never a network call in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.inventory.domain.model import Line, Movement, ReservationStatus, StockRow
from services.kit.tracing import current_trace_id

metadata = MetaData()

warehouses_table = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

skus_table = Table(
    "skus",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the catalogue attributes (revision 0002)
    Column("goods_type", String(16), nullable=False, server_default="normal"),
    Column("category", String(64), nullable=False, server_default=""),
    Column("weight_g", BigInteger, nullable=False, server_default="0"),
    Column("customised", Boolean, nullable=False, server_default="false"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("goods_type IN ('normal', 'fresh', 'cold_chain')", name="skus_goods_type"),
    CheckConstraint("weight_g BETWEEN 0 AND 1000000", name="skus_weight_g"),
    Index("skus_by_category", "category", "sku"),
)

stock_table = Table(
    "stock",
    metadata,
    Column("sku", String(64), ForeignKey("skus.sku"), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), primary_key=True),
    Column("on_hand", BigInteger, nullable=False, server_default="0"),
    Column("reserved", BigInteger, nullable=False, server_default="0"),
    Column("normal_level", BigInteger, nullable=False, server_default="0"),
    Column("safety_level", BigInteger, nullable=False, server_default="0"),
    Column("sellable", Boolean, nullable=False, server_default="true"),
    Column("count_version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
    CheckConstraint("reserved >= 0", name="stock_reserved_not_negative"),
    CheckConstraint("reserved <= on_hand", name="stock_never_oversold"),
    CheckConstraint("safety_level >= 0 AND normal_level >= 0", name="stock_levels_not_negative"),
)

reservations_table = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(36), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('ACTIVE', 'COMMITTED', 'RELEASED', 'EXPIRED')", name="reservations_status"),
    Index(
        "reservations_one_live_per_order",
        "order_id",
        unique=True,
        postgresql_where=text("status IN ('ACTIVE', 'COMMITTED')"),
    ),
    Index("reservations_by_order", "order_id", "created_at"),
    Index("reservations_active_by_expiry", "expires_at", postgresql_where=text("status = 'ACTIVE'")),
)

reservation_lines_table = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(36), ForeignKey("reservations.reservation_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("quantity", BigInteger, nullable=False),
    CheckConstraint("quantity > 0", name="reservation_lines_positive"),
)

ledger_table = Table(
    "ledger",
    metadata,
    Column("entry_id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("on_hand_delta", BigInteger, nullable=False),
    Column("reserved_delta", BigInteger, nullable=False),
    Column("order_id", String(64), nullable=False, server_default=""),
    Column("reference", String(64), nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("trace_id", String(32), nullable=False, server_default=""),
    Index("ledger_by_row", "sku", "warehouse_id", "entry_id"),
    Index("ledger_by_order", "order_id", postgresql_where=text("order_id <> ''")),
)

replenishment_table = Table(
    "replenishment_orders",
    metadata,
    Column("replenishment_order_id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("suggested_quantity", BigInteger, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(
        "replenishment_one_open_per_row",
        "sku",
        "warehouse_id",
        unique=True,
        postgresql_where=text("status IN ('OPEN', 'ORDERED')"),
    ),
)

POOL = ""  # the warehouse id that stands for all of a SKU's warehouses

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


def _arrays(lines: Sequence[Line]) -> dict[str, list[Any]]:
    return {
        "skus": [line.sku for line in lines],
        "warehouses": [line.warehouse_id for line in lines],
        "quantities": [line.quantity for line in lines],
    }


def stock_row(row: Any) -> StockRow:
    return StockRow(
        sku=row.sku,
        warehouse_id=row.warehouse_id,
        on_hand=row.on_hand,
        reserved=row.reserved,
        safety_level=row.safety_level,
        normal_level=row.normal_level,
        sellable=row.sellable,
    )


class InventoryStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- rows locked in (sku, warehouse) order -------------------------------------------------

    async def lock_rows(self, lines: Sequence[Line]) -> None:
        """One order's rows, locked in a fixed order so that overlapping orders never deadlock."""
        if len(lines) > 1:
            await self.conn.execute(_LOCK.bindparams(*_ARRAYS), _arrays(lines))

    async def reserve_rows(self, lines: Sequence[Line], cap_basis_points: int) -> list[StockRow]:
        """The one conditional statement that reserves; a row without room is simply not updated."""
        await self.lock_rows(lines)
        result = await self.conn.execute(
            _RESERVE.bindparams(*_ARRAYS), {**_arrays(lines), "cap": cap_basis_points}
        )
        return [stock_row(row) for row in result]

    async def settle_rows(self, lines: Sequence[Line], *, deduct: bool) -> list[StockRow]:
        """Commit (deduct from on hand) or release (give back) reserved units."""
        await self.lock_rows(lines)
        result = await self.conn.execute(
            _SETTLE.bindparams(*_ARRAYS), {**_arrays(lines), "deduct": 1 if deduct else 0}
        )
        return [stock_row(row) for row in result]

    async def stock(self, sku: str, warehouse_id: str) -> StockRow | None:
        row = (
            await self.conn.execute(
                select(*STOCK_COLUMNS).where(
                    stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id
                )
            )
        ).first()
        return None if row is None else stock_row(row)

    async def lock_stock(self, sku: str, warehouse_id: str) -> tuple[StockRow, int]:
        """The row (created empty if missing) locked for this transaction, with its WMS count version."""
        await self.conn.execute(
            insert(stock_table).values(sku=sku, warehouse_id=warehouse_id).on_conflict_do_nothing()
        )
        row = (
            await self.conn.execute(
                select(*STOCK_COLUMNS, stock_table.c.count_version)
                .where(stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id)
                .with_for_update()
            )
        ).one()
        return stock_row(row), row.count_version

    async def change_on_hand(self, sku: str, warehouse_id: str, delta: int, **values: Any) -> StockRow:
        result = await self.conn.execute(
            update(stock_table)
            .where(stock_table.c.sku == sku, stock_table.c.warehouse_id == warehouse_id)
            .values(on_hand=stock_table.c.on_hand + delta, updated_at=func.now(), **values)
            .returning(*STOCK_COLUMNS)
        )
        return stock_row(result.one())

    async def set_policy(self, sku: str, warehouse_id: str, normal_level: int, safety_level: int) -> StockRow:
        result = await self.conn.execute(
            insert(stock_table)
            .values(sku=sku, warehouse_id=warehouse_id, normal_level=normal_level, safety_level=safety_level)
            .on_conflict_do_update(
                index_elements=["sku", "warehouse_id"],
                set_={"normal_level": normal_level, "safety_level": safety_level, "updated_at": func.now()},
            )
            .returning(*STOCK_COLUMNS)
        )
        return stock_row(result.one())

    async def pool_row(self, sku: str) -> StockRow:
        """A SKU across all its warehouses, as one row (warehouse_id POOL) for pool-scope safety stock."""
        row = (
            await self.conn.execute(
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
        scope = [stock_table.c.sku == sku]
        if warehouse_id != POOL:
            scope.append(stock_table.c.warehouse_id == warehouse_id)
        result = await self.conn.execute(
            update(stock_table)
            .where(*scope, stock_table.c.sellable.is_not(sellable))
            .values(sellable=sellable)
            .returning(stock_table.c.sku)
        )
        return result.first() is not None

    # --- reference data ------------------------------------------------------------------------

    async def unknown_references(
        self, skus: Iterable[str], warehouses: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        skus, warehouses = set(skus), set(warehouses)
        known_skus = set(
            (await self.conn.scalars(select(skus_table.c.sku).where(skus_table.c.sku.in_(skus)))).all()
        )
        known_warehouses = set(
            (
                await self.conn.scalars(
                    select(warehouses_table.c.warehouse_id).where(
                        warehouses_table.c.warehouse_id.in_(warehouses)
                    )
                )
            ).all()
        )
        return skus - known_skus, warehouses - known_warehouses

    # --- reservations --------------------------------------------------------------------------

    async def add_reservation(
        self, reservation_id: str, order_id: str, lines: Sequence[Line], expires_at: datetime, now: datetime
    ) -> bool:
        """False when the order already holds a live (active or committed) reservation."""
        inserted = await self.conn.execute(
            insert(reservations_table)
            .values(
                reservation_id=reservation_id,
                order_id=order_id,
                status=ReservationStatus.ACTIVE.value,
                expires_at=expires_at,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["order_id"], index_where=text("status IN ('ACTIVE', 'COMMITTED')")
            )
            .returning(reservations_table.c.reservation_id)
        )
        if inserted.first() is None:
            return False
        await self.conn.execute(
            reservation_lines_table.insert(),
            [
                {
                    "reservation_id": reservation_id,
                    "sku": line.sku,
                    "warehouse_id": line.warehouse_id,
                    "quantity": line.quantity,
                }
                for line in lines
            ],
        )
        return True

    async def latest_reservation(self, order_id: str, *, for_update: bool = False) -> Any | None:
        query = (
            select(reservations_table)
            .where(reservations_table.c.order_id == order_id)
            .order_by(reservations_table.c.created_at.desc(), reservations_table.c.reservation_id.desc())
            .limit(1)
        )
        if for_update:
            query = query.with_for_update()
        return (await self.conn.execute(query)).first()

    async def lines_of(self, reservation_id: str) -> tuple[Line, ...]:
        rows = await self.conn.execute(
            select(
                reservation_lines_table.c.sku,
                reservation_lines_table.c.warehouse_id,
                reservation_lines_table.c.quantity,
            )
            .where(reservation_lines_table.c.reservation_id == reservation_id)
            .order_by(reservation_lines_table.c.sku, reservation_lines_table.c.warehouse_id)
        )
        return tuple(Line(row.sku, row.warehouse_id, row.quantity) for row in rows)

    async def set_status(
        self,
        order_id: str,
        current: ReservationStatus,
        target: ReservationStatus,
        now: datetime,
        *,
        unexpired_at: datetime | None = None,
    ) -> Any | None:
        query = update(reservations_table).where(
            reservations_table.c.order_id == order_id, reservations_table.c.status == current.value
        )
        if unexpired_at is not None:
            query = query.where(reservations_table.c.expires_at > unexpired_at)
        result = await self.conn.execute(
            query.values(status=target.value, updated_at=now).returning(*reservations_table.c)
        )
        return result.first()

    async def claim_expired(
        self, now: datetime, limit: int, keys: Sequence[tuple[str, str]] = ()
    ) -> list[Any]:
        """Active reservations past their TTL; SKIP LOCKED is on reservation rows, never on stock rows."""
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
        return list((await self.conn.execute(query)).all())

    async def mark(self, reservation_ids: Sequence[str], status: ReservationStatus, now: datetime) -> None:
        await self.conn.execute(
            update(reservations_table)
            .where(reservations_table.c.reservation_id.in_(reservation_ids))
            .values(status=status.value, updated_at=now)
        )

    async def move_line(self, reservation_id: str, sku: str, from_warehouse: str, to_warehouse: str) -> None:
        await self.conn.execute(
            update(reservation_lines_table)
            .where(
                reservation_lines_table.c.reservation_id == reservation_id,
                reservation_lines_table.c.sku == sku,
                reservation_lines_table.c.warehouse_id == from_warehouse,
            )
            .values(warehouse_id=to_warehouse)
        )

    # --- ledger --------------------------------------------------------------------------------

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
            await self.conn.execute(ledger_table.insert(), rows)


# --- the reserve fast path -------------------------------------------------------------------------
# The common case of a reservation (a new order, enough stock, no safety level crossed) is ONE
# statement, so one round trip and its own transaction: it locks the order's stock rows in
# (sku, warehouse) order, checks every line against the cap (and that no safety level would be
# crossed), and only if all pass inserts the reservation; only if that insert did not meet a live
# reservation of the order does it update stock and write the lines, the ledger entries and the
# outbox event. The stock UPDATE repeats the conditions, so it can never take more than the cap
# even on its own. Whatever did not happen is reported (FastMiss) and nothing was written; the
# caller answers a shortage at once and takes the general path for repeats and safety stock.

_FAST_RESERVE = """
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


class FastMiss(StrEnum):
    """Why the fast path stepped aside: a live reservation, short stock, or a safety level crossed."""

    EXISTS = "exists"
    SHORT = "short"
    SIGNAL = "signal"


async def reserve_fast(
    engine: AsyncEngine,
    *,
    reservation_id: str,
    order_id: str,
    lines: Sequence[Line],
    expires_at: datetime,
    now: datetime,
    cap_basis_points: int,
    event: dict[str, Any],
) -> FastMiss | None:
    """None: reserved (and committed). Otherwise why not; nothing was written."""
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        outcome = await driver.fetchrow(
            _FAST_RESERVE,
            reservation_id,
            order_id,
            expires_at,
            now,
            [line.sku for line in lines],
            [line.warehouse_id for line in lines],
            [line.quantity for line in lines],
            current_trace_id(),
            event["event_id"],
            event["subject"],
            event["event_type"],
            event["payload"],
            event["traceparent"],
            cap_basis_points,
        )
    if outcome["fits"] < len(lines):
        return FastMiss.SHORT
    if outcome["crossing"]:
        return FastMiss.SIGNAL
    if not outcome["inserted"]:
        return FastMiss.EXISTS
    if outcome["updated"] != len(lines):
        raise RuntimeError("reservation written without its stock update")  # cannot happen: rows are locked
    return None


# --- availability, on every order's routing: one prepared statement on the driver -------------------

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


async def read_levels(
    conn: AsyncConnection, skus: Sequence[str], warehouses: Sequence[str], now: datetime
) -> list[tuple[StockRow, int]]:
    """Stock rows with the units of their expired-but-not-yet-swept reservations, on the caller's
    connection (a second one from the pool per request would starve the pool under load)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    rows = await driver.fetch(_LEVELS, list(skus), list(warehouses), now)
    return [
        (
            StockRow(
                row["sku"],
                row["warehouse_id"],
                row["on_hand"],
                row["reserved"],
                row["safety_level"],
                row["normal_level"],
                row["sellable"],
            ),
            row["expired_units"],
        )
        for row in rows
    ]
