"""Inventory use cases: one function per command, each inside one unit of work."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from oms.inventory.v1 import events_pb2, inventory_pb2
from services.inventory import messages
from services.inventory.domain.model import (
    GoodsType,
    Line,
    Movement,
    ReplenishmentStatus,
    ReservationRecord,
    ReservationStatus,
    StockRow,
    StockSignal,
    check_quantity,
    check_reference,
    check_replenishment_transition,
    decide_count,
    default_safety_level,
    low_stock_signal,
    replenishment_quantity,
    reservation_lines,
    sku_entry,
)
from services.inventory.store import (
    FastMiss,
    InventoryStore,
    ledger_table,
    read_levels,
    replenishment_table,
    reserve_fast,
    skus_table,
    warehouses_table,
)
from services.kit import idempotency, outbox
from services.kit.db import UnitOfWork
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id

POOL_SCOPE = "pool"


@dataclass(frozen=True)
class Policy:
    reservation_ttl: timedelta = timedelta(minutes=15)
    cap_basis_points: int = 9_500
    safety_percent: int = 30
    sweep_batch: int = 200
    # "warehouse": each SKU × warehouse row against its own safety level; "pool": a SKU's sums
    low_stock_scope: str = "warehouse"


@dataclass(frozen=True)
class Shortage:
    sku: str
    warehouse_id: str
    requested: int
    available: int
    reason: str


@dataclass
class ReserveOutcome:
    reserved: bool
    reservation: Any = None
    lines: tuple[Line, ...] = ()
    shortages: list[Shortage] = field(default_factory=list)


# --- reference data and policy --------------------------------------------------------------------


async def put_warehouse(uow: UnitOfWork, warehouse_id: str, name: str) -> None:
    check_reference("warehouse_id", warehouse_id)
    async with uow:
        await uow.conn.execute(
            insert(warehouses_table)
            .values(warehouse_id=warehouse_id, name=name or warehouse_id)
            .on_conflict_do_update(index_elements=["warehouse_id"], set_={"name": name or warehouse_id})
        )
        await uow.commit()


_CATALOGUE = ("title", "goods_type", "category", "weight_g", "customised")


async def put_sku(
    uow: UnitOfWork,
    sku: str,
    title: str,
    goods_type: GoodsType = GoodsType.NORMAL,
    category: str = "",
    weight_g: int = 0,
    customised: bool = False,
) -> Any:
    """The whole entry is replaced (PUT); a repeat leaves it, and its `updated_at`, as they were."""
    entry = sku_entry(sku, title, goods_type, category, weight_g, customised)
    values = {name: getattr(entry, name) for name in _CATALOGUE}
    values["goods_type"] = entry.goods_type.value
    statement = insert(skus_table).values(sku=entry.sku, **values, updated_at=uow.clock.now())
    changed = or_(*(skus_table.c[name].is_distinct_from(statement.excluded[name]) for name in _CATALOGUE))
    async with uow:
        written = (
            await uow.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["sku"],
                    set_={**values, "updated_at": statement.excluded.updated_at},
                    where=changed,
                ).returning(*skus_table.c)
            )
        ).first()
        if written is None:  # a repeat: nothing changed, nothing to announce
            row = (await uow.conn.execute(select(skus_table).where(skus_table.c.sku == entry.sku))).one()
        else:
            row = written
            uow.publish("inventory.sku_updated", events_pb2.SkuUpdated(sku=messages.sku(row)))
        await uow.commit()
    return row


async def get_sku(uow: UnitOfWork, sku: str) -> Any:
    check_reference("sku", sku)
    async with uow:
        row = (await uow.conn.execute(select(skus_table).where(skus_table.c.sku == sku))).first()
    if row is None:
        raise NotFound(f"unknown SKU {sku}")
    return row


async def list_skus(
    uow: UnitOfWork, goods_type: GoodsType | None, category: str, page_size: int, page_token: str
) -> tuple[list[Any], str]:
    size = min(page_size or 100, 1000)
    query = select(skus_table).order_by(skus_table.c.sku).limit(size + 1)
    if goods_type is not None:
        query = query.where(skus_table.c.goods_type == goods_type.value)
    if category:
        query = query.where(skus_table.c.category == category)
    if page_token:
        query = query.where(skus_table.c.sku > page_token)
    async with uow:
        rows = list((await uow.conn.execute(query)).all())
    return rows[:size], rows[size - 1].sku if len(rows) > size else ""


async def set_stock_policy(
    uow: UnitOfWork, policy: Policy, warehouse_id: str, sku: str, normal_level: int, safety_level: int
) -> StockRow:
    check_quantity("normal_level", normal_level, allow_zero=True)
    check_quantity("safety_level", safety_level, allow_zero=True)
    async with uow:
        store = InventoryStore(uow.conn)
        await _known(store, [sku], warehouse_id)
        safety = safety_level or default_safety_level(normal_level, policy.safety_percent)
        [row] = await _apply_signals(
            policy, uow, store, [await store.set_policy(sku, warehouse_id, normal_level, safety)]
        )
        await uow.commit()
    return row


# --- reservations ----------------------------------------------------------------------------------


async def reserve(
    new_uow: Any, policy: Policy, order_id: str, requested: list[Line], ttl: timedelta | None = None
) -> ReserveOutcome:
    """All lines or none. Rows are written before the stock update so hot rows stay locked briefly."""
    check_reference("order_id", order_id)
    lines = reservation_lines(requested)
    if ttl is not None and not timedelta(seconds=10) <= ttl <= timedelta(days=7):
        raise InvalidArgument("ttl_seconds", "must be between 10 seconds and 7 days")
    fast = (
        await _reserve_fast(new_uow(), policy, order_id, lines, ttl)
        if policy.low_stock_scope != POOL_SCOPE
        else FastMiss.SIGNAL
    )
    if isinstance(fast, ReserveOutcome):
        return fast
    if fast is FastMiss.SHORT and not await expire_reservations(
        new_uow(), policy, keys=[line.key for line in lines]
    ):
        return ReserveOutcome(False, shortages=await _shortages(new_uow(), policy, lines, requested))
    stale: list[tuple[str, str]] = []
    for attempt in (1, 2):
        if stale:  # released here, outside any open transaction: one pooled connection per request
            await expire_reservations(new_uow(), policy, keys=stale)
            stale = []
        uow: UnitOfWork = new_uow()
        async with uow:
            store = InventoryStore(uow.conn)
            now = uow.clock.now()
            reservation_id = new_id()
            expires_at = now + (ttl or policy.reservation_ttl)
            if not await store.add_reservation(reservation_id, order_id, lines, expires_at, now):
                existing = await store.latest_reservation(order_id)
                assert existing is not None, "the conflicting reservation is live and cannot vanish"
                existing_lines = await store.lines_of(existing.reservation_id)
                if (
                    existing.status == ReservationStatus.ACTIVE
                    and existing.expires_at <= now
                    and attempt == 1
                ):
                    stale = [line.key for line in existing_lines]
                    continue
                if existing_lines != lines:
                    raise FailedPrecondition(f"order {order_id} already holds a different reservation")
                return ReserveOutcome(True, existing, existing_lines)
            await store.record(
                Movement.RESERVE,
                now,
                ((line.sku, line.warehouse_id, 0, line.quantity) for line in lines),
                order_id=order_id,
            )
            uow.publish(
                "inventory.reserved",
                events_pb2.StockReserved(
                    order_id=order_id,
                    reservation_id=reservation_id,
                    lines=messages.lines(lines),
                    expires_at=messages.timestamp(expires_at),
                ),
            )
            await uow.flush_events()
            updated = await store.reserve_rows(lines, policy.cap_basis_points)
            if len(updated) == len(lines):
                await _apply_signals(policy, uow, store, updated)
                await uow.commit()
                record = ReservationRecord(
                    reservation_id, order_id, ReservationStatus.ACTIVE.value, expires_at, now
                )
                return ReserveOutcome(True, record, lines)
        if attempt == 1 and await expire_reservations(new_uow(), policy, keys=[line.key for line in lines]):
            continue
        break
    return ReserveOutcome(False, shortages=await _shortages(new_uow(), policy, lines, requested))


async def _reserve_fast(
    uow: UnitOfWork, policy: Policy, order_id: str, lines: tuple[Line, ...], ttl: timedelta | None
) -> ReserveOutcome | FastMiss:
    """The common case in one short transaction; otherwise why not (nothing was written)."""
    now = uow.clock.now()
    reservation_id = new_id()
    expires_at = now + (ttl or policy.reservation_ttl)
    event = outbox.event_row(
        "inventory.reserved",
        events_pb2.StockReserved(
            order_id=order_id,
            reservation_id=reservation_id,
            lines=messages.lines(lines),
            expires_at=messages.timestamp(expires_at),
        ),
        now,
    )
    reserved = await reserve_fast(
        uow.engine,
        reservation_id=reservation_id,
        order_id=order_id,
        lines=lines,
        expires_at=expires_at,
        now=now,
        cap_basis_points=policy.cap_basis_points,
        event=event,
    )
    if reserved is not None:
        return reserved
    record = ReservationRecord(reservation_id, order_id, ReservationStatus.ACTIVE.value, expires_at, now)
    return ReserveOutcome(True, record, lines)


async def _shortages(
    uow: UnitOfWork, policy: Policy, lines: Sequence[Line], requested: list[Line]
) -> list[Shortage]:
    async with uow:
        store = InventoryStore(uow.conn)
        skus, warehouses = [line.sku for line in lines], [line.warehouse_id for line in lines]
        levels = await _levels(uow, policy, skus, warehouses)
        missing = [line for line in lines if line.key not in levels]
        unknown_skus, unknown_warehouses = (
            await store.unknown_references(
                (line.sku for line in missing), (line.warehouse_id for line in missing)
            )
            if missing
            else (set(), set())
        )
        for index, line in enumerate(requested):
            if line.sku in unknown_skus:
                raise InvalidArgument(f"lines[{index}].sku", f"unknown SKU {line.sku}")
            if line.warehouse_id in unknown_warehouses:
                raise InvalidArgument(
                    f"lines[{index}].warehouse_id", f"unknown warehouse {line.warehouse_id}"
                )
    shortages = []
    for line in lines:
        level = levels.get(line.key)
        if level is None:
            shortages.append(Shortage(line.sku, line.warehouse_id, line.quantity, 0, "no_stock_record"))
        elif not level.sellable:
            shortages.append(Shortage(line.sku, line.warehouse_id, line.quantity, 0, "not_sellable"))
        elif level.available < line.quantity:
            shortages.append(
                Shortage(line.sku, line.warehouse_id, line.quantity, level.available, "insufficient")
            )
    return shortages


async def commit_reservation(new_uow: Any, policy: Policy, order_id: str) -> tuple[Any, tuple[Line, ...]]:
    """Payment confirmed: reserved units leave on hand. A released or expired reservation never commits."""
    check_reference("order_id", order_id)
    uow: UnitOfWork = new_uow()
    async with uow:
        store = InventoryStore(uow.conn)
        now = uow.clock.now()
        row = await store.set_status(
            order_id, ReservationStatus.ACTIVE, ReservationStatus.COMMITTED, now, unexpired_at=now
        )
        if row is not None:
            lines = await store.lines_of(row.reservation_id)
            await store.settle_rows(lines, deduct=True)
            await store.record(
                Movement.COMMIT,
                now,
                ((line.sku, line.warehouse_id, -line.quantity, -line.quantity) for line in lines),
                order_id=order_id,
            )
            uow.publish(
                "inventory.committed",
                events_pb2.ReservationCommitted(
                    order_id=order_id, reservation_id=row.reservation_id, lines=messages.lines(lines)
                ),
            )
            await uow.commit()
            return row, lines
        latest = await store.latest_reservation(order_id)
        if latest is None:
            raise NotFound(f"order {order_id} has no reservation")
        lines = await store.lines_of(latest.reservation_id)
    if latest.status == ReservationStatus.COMMITTED:
        return latest, lines
    if latest.status == ReservationStatus.ACTIVE:
        await expire_reservations(new_uow(), policy, keys=[line.key for line in lines])
        raise FailedPrecondition(f"the reservation of order {order_id} expired; reserve again")
    raise FailedPrecondition(
        f"the reservation of order {order_id} is {latest.status} and cannot be committed"
    )


async def release_reservation(
    new_uow: Any, policy: Policy, order_id: str, reason: str
) -> tuple[Any, tuple[Line, ...]]:
    check_reference("order_id", order_id)
    uow: UnitOfWork = new_uow()
    async with uow:
        store = InventoryStore(uow.conn)
        now = uow.clock.now()
        row = await store.set_status(order_id, ReservationStatus.ACTIVE, ReservationStatus.RELEASED, now)
        if row is not None:
            lines = await store.lines_of(row.reservation_id)
            stock = await store.settle_rows(lines, deduct=False)
            await store.record(
                Movement.RELEASE,
                now,
                ((line.sku, line.warehouse_id, 0, -line.quantity) for line in lines),
                order_id=order_id,
                reason=reason[:500],
            )
            uow.publish(
                "inventory.released",
                events_pb2.ReservationReleased(
                    order_id=order_id,
                    reservation_id=row.reservation_id,
                    lines=messages.lines(lines),
                    reason=reason[:500],
                ),
            )
            await _apply_signals(policy, uow, store, stock)
            await uow.commit()
            return row, lines
        latest = await store.latest_reservation(order_id)
        if latest is None:
            raise NotFound(f"order {order_id} has no reservation")
        if latest.status == ReservationStatus.COMMITTED:
            raise FailedPrecondition(
                f"the reservation of order {order_id} is committed; restock a return instead"
            )
        return latest, await store.lines_of(latest.reservation_id)


async def move_reservation(
    new_uow: Any, policy: Policy, order_id: str, sku: str, from_warehouse: str, to_warehouse: str
) -> tuple[Any, tuple[Line, ...], Shortage | None]:
    """Re-routing: reserve at the target and release at the source in one transaction, or do nothing."""
    check_reference("order_id", order_id)
    check_reference("sku", sku)
    check_reference("from_warehouse_id", from_warehouse)
    check_reference("to_warehouse_id", to_warehouse)
    if from_warehouse == to_warehouse:
        raise InvalidArgument("to_warehouse_id", "must differ from from_warehouse_id")
    uow: UnitOfWork = new_uow()
    async with uow:
        store = InventoryStore(uow.conn)
        now = uow.clock.now()
        row = await store.latest_reservation(order_id, for_update=True)
        if row is None:
            raise NotFound(f"order {order_id} has no reservation")
        if row.status != ReservationStatus.ACTIVE or row.expires_at <= now:
            raise FailedPrecondition(
                f"only an active reservation can move; order {order_id}'s is {row.status}"
            )
        lines = await store.lines_of(row.reservation_id)
        moving = next((line for line in lines if line.key == (sku, from_warehouse)), None)
        if moving is None:
            raise NotFound(f"order {order_id} reserves no {sku} at {from_warehouse}")
        if any(line.sku == sku and line.warehouse_id == to_warehouse for line in lines):
            raise FailedPrecondition(f"order {order_id} already reserves {sku} at {to_warehouse}")
        target = Line(sku, to_warehouse, moving.quantity)
        await store.lock_rows(sorted([moving, target]))
        reserved = await store.reserve_rows([target], policy.cap_basis_points)
        if not reserved:
            short = True
        else:
            short = False
            released = await store.settle_rows([moving], deduct=False)
            await store.move_line(row.reservation_id, sku, from_warehouse, to_warehouse)
            await store.record(
                Movement.MOVE_OUT, now, [(sku, from_warehouse, 0, -moving.quantity)], order_id=order_id
            )
            await store.record(
                Movement.MOVE_IN, now, [(sku, to_warehouse, 0, moving.quantity)], order_id=order_id
            )
            await _apply_signals(policy, uow, store, [*reserved, *released])
            await uow.commit()
            new_lines = tuple(sorted(target if line == moving else line for line in lines))
    if short:
        shortages = await _shortages(new_uow(), policy, [target], [target])
        return row, lines, shortages[0] if shortages else None
    return row, new_lines, None


async def get_reservation(uow: UnitOfWork, order_id: str) -> tuple[Any, tuple[Line, ...]]:
    check_reference("order_id", order_id)
    async with uow:
        store = InventoryStore(uow.conn)
        row = await store.latest_reservation(order_id)
        if row is None:
            raise NotFound(f"order {order_id} has no reservation")
        return row, await store.lines_of(row.reservation_id)


async def expire_reservations(uow: UnitOfWork, policy: Policy, keys: Sequence[tuple[str, str]] = ()) -> int:
    """Release unpaid reservations past their TTL and announce them; the orders service cancels the orders."""
    async with uow:
        store = InventoryStore(uow.conn)
        now = uow.clock.now()
        due = await store.claim_expired(now, policy.sweep_batch, keys)
        if not due:
            return 0
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for reservation in due:
            lines = await store.lines_of(reservation.reservation_id)
            for line in lines:
                totals[line.key] += line.quantity
            await store.record(
                Movement.EXPIRE,
                now,
                ((line.sku, line.warehouse_id, 0, -line.quantity) for line in lines),
                order_id=reservation.order_id,
            )
            uow.publish(
                "inventory.reservation_expired",
                events_pb2.ReservationExpired(
                    order_id=reservation.order_id,
                    reservation_id=reservation.reservation_id,
                    lines=messages.lines(lines),
                    expired_at=messages.timestamp(reservation.expires_at),
                ),
            )
        await store.mark([r.reservation_id for r in due], ReservationStatus.EXPIRED, now)
        stock = await store.settle_rows(
            sorted(Line(sku, warehouse, quantity) for (sku, warehouse), quantity in totals.items()),
            deduct=False,
        )
        await _apply_signals(policy, uow, store, stock)
        await uow.commit()
    return len(due)


# --- availability ----------------------------------------------------------------------------------


async def _levels(
    uow: UnitOfWork, policy: Policy, skus: Sequence[str], warehouses: Sequence[str]
) -> dict[tuple[str, str], inventory_pb2.StockLevel]:
    """Expired reservations stop counting here at once, before the sweeper releases them."""
    rows = await read_levels(uow.conn, skus, warehouses, uow.clock.now())
    return {
        (row.sku, row.warehouse_id): messages.stock_level(row, policy.cap_basis_points, expired)
        for row, expired in rows
    }


async def availability(
    uow: UnitOfWork, policy: Policy, skus: list[str], warehouses: list[str]
) -> list[inventory_pb2.SkuAvailability]:
    if not skus:
        raise InvalidArgument("skus", "name at least one SKU")
    if len(skus) > 1000:
        raise InvalidArgument("skus", "at most 1000 SKUs per query")
    for index, sku in enumerate(skus):
        check_reference(f"skus[{index}]", sku)
    for index, warehouse in enumerate(warehouses):
        check_reference(f"warehouse_ids[{index}]", warehouse)
    async with uow:
        levels = await _levels(uow, policy, skus, warehouses)
        catalogue = {
            row.sku: row
            for row in await uow.conn.execute(select(skus_table).where(skus_table.c.sku.in_(set(skus))))
        }
    for index, sku in enumerate(skus):
        if sku not in catalogue:
            raise InvalidArgument(f"skus[{index}]", f"unknown SKU {sku}")
    by_sku: dict[str, list[inventory_pb2.StockLevel]] = defaultdict(list)
    for (sku, _), level in levels.items():
        by_sku[sku].append(level)
    return [
        inventory_pb2.SkuAvailability(
            sku=sku,
            pool_available=sum(level.available for level in by_sku[sku]),
            pool_on_hand=sum(level.on_hand for level in by_sku[sku]),
            warehouses=by_sku[sku],
            catalogue=messages.sku(catalogue[sku]),
        )
        for sku in skus
    ]


# --- stock from warehouses -------------------------------------------------------------------------


async def record_receipt(
    uow: UnitOfWork,
    policy: Policy,
    receipt_id: str,
    warehouse_id: str,
    sku: str,
    quantity: int,
    *,
    owner: str,
) -> StockRow:
    """Goods in, once per receipt id of the caller `owner` (idempotency.owner_of)."""
    check_reference("receipt_id", receipt_id)
    check_quantity("quantity", quantity)
    return (
        await _change_stock(
            uow,
            policy,
            "receipt",
            receipt_id,
            [(sku, quantity)],
            warehouse_id,
            Movement.RECEIPT,
            owner=owner,
            reason="received",
        )
    )[0]


async def adjust_stock(
    uow: UnitOfWork,
    policy: Policy,
    adjustment_id: str,
    warehouse_id: str,
    sku: str,
    delta: int,
    reason: str,
    note: str,
    *,
    owner: str,
) -> StockRow:
    check_reference("adjustment_id", adjustment_id)
    if delta == 0:
        raise InvalidArgument("delta", "must not be zero")
    check_quantity("delta", abs(delta))
    if not reason:
        raise InvalidArgument("reason", "is required")
    return (
        await _change_stock(
            uow,
            policy,
            "adjust",
            adjustment_id,
            [(sku, delta)],
            warehouse_id,
            Movement.ADJUST,
            owner=owner,
            reason=f"{reason}: {note}"[:500] if note else reason,
        )
    )[0]


async def restock(
    uow: UnitOfWork,
    policy: Policy,
    return_id: str,
    order_id: str,
    warehouse_id: str,
    lines: list[tuple[str, int]],
    *,
    owner: str,
) -> list[StockRow]:
    """A received return puts its units back on hand, once per return id of its caller."""
    check_reference("return_id", return_id)
    check_reference("order_id", order_id)
    if not lines:
        raise InvalidArgument("lines", "a restock needs at least one line")
    seen: set[str] = set()
    for index, (sku, quantity) in enumerate(lines):
        check_reference(f"lines[{index}].sku", sku)
        check_quantity(f"lines[{index}].quantity", quantity)
        if sku in seen:
            raise InvalidArgument(f"lines[{index}].sku", "duplicates an earlier line")
        seen.add(sku)
    return await _change_stock(
        uow,
        policy,
        "restock",
        return_id,
        sorted(lines),
        warehouse_id,
        Movement.RESTOCK,
        owner=owner,
        order_id=order_id,
        reason="return received",
    )


async def _change_stock(
    uow: UnitOfWork,
    policy: Policy,
    scope: str,
    key: str,
    changes: Sequence[tuple[str, int]],
    warehouse_id: str,
    kind: Movement,
    *,
    owner: str,
    order_id: str = "",
    reason: str = "",
) -> list[StockRow]:
    check_reference("warehouse_id", warehouse_id)
    for sku, _ in changes:
        check_reference("sku", sku)
    digest = idempotency.request_hash(json.dumps([warehouse_id, list(changes), order_id, reason]).encode())
    async with uow:
        store = InventoryStore(uow.conn)
        first = await idempotency.claim(uow.conn, scope, key, digest, owner)
        if first is not None:
            return [StockRow(**row) for row in json.loads(first)]
        await _known(store, [sku for sku, _ in changes], warehouse_id)
        now = uow.clock.now()
        rows = []
        for sku, delta in changes:
            current, _ = await store.lock_stock(sku, warehouse_id)
            if current.on_hand + delta < current.reserved:
                raise FailedPrecondition(
                    f"{sku} at {warehouse_id}: on hand would fall to {current.on_hand + delta}, below the "
                    f"{current.reserved} units reserved for open orders"
                )
            rows.append(await store.change_on_hand(sku, warehouse_id, delta))
            uow.publish(
                "inventory.adjusted",
                events_pb2.StockAdjusted(
                    sku=sku,
                    warehouse_id=warehouse_id,
                    kind=kind.value,
                    on_hand_delta=delta,
                    on_hand=rows[-1].on_hand,
                    reference=key,
                    reason=reason,
                ),
            )
        await store.record(
            kind,
            now,
            ((sku, warehouse_id, delta, 0) for sku, delta in changes),
            order_id=order_id,
            reference=key,
            reason=reason,
        )
        rows = await _apply_signals(policy, uow, store, rows)
        await idempotency.complete(
            uow.conn, scope, key, json.dumps([asdict(r) for r in rows]).encode(), owner
        )
        await uow.commit()
    return rows


async def record_stock_count(
    uow: UnitOfWork, policy: Policy, warehouse_id: str, sku: str, on_hand: int, version: int
) -> tuple[bool, StockRow]:
    """A WMS's absolute count. Our reservations are kept as they are; an older count changes nothing."""
    check_reference("warehouse_id", warehouse_id)
    check_reference("sku", sku)
    check_quantity("on_hand", on_hand, allow_zero=True)
    if version <= 0:
        raise InvalidArgument("version", "must be a positive, increasing number")
    async with uow:
        store = InventoryStore(uow.conn)
        await _known(store, [sku], warehouse_id)
        current, current_version = await store.lock_stock(sku, warehouse_id)
        decision = decide_count(current_version, current.on_hand, current.reserved, version, on_hand)
        if not decision.apply:
            return False, current
        row = await store.change_on_hand(sku, warehouse_id, decision.delta, count_version=version)
        await store.record(
            Movement.COUNT,
            uow.clock.now(),
            [(sku, warehouse_id, decision.delta, 0)],
            reference=f"v{version}",
            reason="WMS count",
        )
        uow.publish(
            "inventory.adjusted",
            events_pb2.StockAdjusted(
                sku=sku,
                warehouse_id=warehouse_id,
                kind=Movement.COUNT.value,
                on_hand_delta=decision.delta,
                on_hand=row.on_hand,
                reference=f"v{version}",
                reason="WMS count",
            ),
        )
        [row] = await _apply_signals(policy, uow, store, [row])
        await uow.commit()
    return True, row


async def _known(store: InventoryStore, skus: list[str], warehouse_id: str) -> None:
    unknown_skus, unknown_warehouses = await store.unknown_references(skus, [warehouse_id])
    if unknown_skus:
        raise InvalidArgument("sku", f"unknown SKU {sorted(unknown_skus)[0]}")
    if unknown_warehouses:
        raise InvalidArgument("warehouse_id", f"unknown warehouse {warehouse_id}")


# --- safety stock ----------------------------------------------------------------------------------


async def _apply_signals(
    policy: Policy, uow: UnitOfWork, store: InventoryStore, rows: Sequence[StockRow]
) -> list[StockRow]:
    """Rows crossing their safety level flip sellable, with an event and a replenishment work order.

    In pool scope the sums over all of a SKU's warehouses decide, and all its rows flip together.
    """
    if policy.low_stock_scope == POOL_SCOPE:
        pools = [await store.pool_row(sku) for sku in sorted({row.sku for row in rows})]
        await _apply_signals(replace(policy, low_stock_scope="warehouse"), uow, store, pools)
        return [await store.stock(row.sku, row.warehouse_id) or row for row in rows]
    result = []
    for row in rows:
        signal = low_stock_signal(row)
        if signal is StockSignal.LOW and await store.set_sellable(row.sku, row.warehouse_id, False):
            order_id = await _open_replenishment(uow, row)
            uow.publish(
                "inventory.low_stock",
                events_pb2.LowStock(
                    sku=row.sku,
                    warehouse_id=row.warehouse_id,
                    sellable_units=row.sellable_units,
                    safety_level=row.safety_level,
                    replenishment_order_id=order_id,
                ),
            )
            row = StockRow(**{**asdict(row), "sellable": False})
        elif signal is StockSignal.RECOVERED and await store.set_sellable(row.sku, row.warehouse_id, True):
            await uow.conn.execute(
                update(replenishment_table)
                .where(
                    replenishment_table.c.sku == row.sku,
                    replenishment_table.c.warehouse_id == row.warehouse_id,
                    replenishment_table.c.status.in_(
                        [ReplenishmentStatus.OPEN.value, ReplenishmentStatus.ORDERED.value]
                    ),
                )
                .values(
                    status=ReplenishmentStatus.CLOSED.value,
                    note="stock recovered",
                    updated_at=uow.clock.now(),
                )
            )
            uow.publish(
                "inventory.back_in_stock",
                events_pb2.BackInStock(
                    sku=row.sku, warehouse_id=row.warehouse_id, sellable_units=row.sellable_units
                ),
            )
            row = StockRow(**{**asdict(row), "sellable": True})
        result.append(row)
    return result


async def _open_replenishment(uow: UnitOfWork, row: StockRow) -> str:
    now = uow.clock.now()
    inserted = await uow.conn.execute(
        insert(replenishment_table)
        .values(
            replenishment_order_id=new_id(),
            sku=row.sku,
            warehouse_id=row.warehouse_id,
            status=ReplenishmentStatus.OPEN.value,
            suggested_quantity=replenishment_quantity(row),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["sku", "warehouse_id"], index_where=text("status IN ('OPEN', 'ORDERED')")
        )
        .returning(replenishment_table.c.replenishment_order_id)
    )
    created = inserted.scalar()
    if created is not None:
        return str(created)
    existing = await uow.conn.scalar(
        select(replenishment_table.c.replenishment_order_id).where(
            replenishment_table.c.sku == row.sku,
            replenishment_table.c.warehouse_id == row.warehouse_id,
            replenishment_table.c.status.in_(
                [ReplenishmentStatus.OPEN.value, ReplenishmentStatus.ORDERED.value]
            ),
        )
    )
    return str(existing)


async def list_replenishment_orders(
    uow: UnitOfWork, status: ReplenishmentStatus | None, sku: str, page_size: int, page_token: str
) -> tuple[list[Any], str]:
    size = _page_size(page_size)
    query = (
        select(replenishment_table)
        .order_by(replenishment_table.c.replenishment_order_id.desc())
        .limit(size + 1)
    )
    if status is not None:
        query = query.where(replenishment_table.c.status == status.value)
    if sku:
        query = query.where(replenishment_table.c.sku == sku)
    if page_token:
        query = query.where(replenishment_table.c.replenishment_order_id < page_token)
    async with uow:
        rows = list((await uow.conn.execute(query)).all())
    return rows[:size], rows[size - 1].replenishment_order_id if len(rows) > size else ""


async def update_replenishment_order(
    uow: UnitOfWork, replenishment_order_id: str, status: ReplenishmentStatus, note: str
) -> Any:
    async with uow:
        row = (
            await uow.conn.execute(
                select(replenishment_table)
                .where(replenishment_table.c.replenishment_order_id == replenishment_order_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"replenishment order {replenishment_order_id} not found")
        check_replenishment_transition(ReplenishmentStatus(row.status), status)
        updated = (
            await uow.conn.execute(
                update(replenishment_table)
                .where(replenishment_table.c.replenishment_order_id == replenishment_order_id)
                .values(status=status.value, note=note[:500] or row.note, updated_at=uow.clock.now())
                .returning(*replenishment_table.c)
            )
        ).one()
        await uow.commit()
    return updated


# --- ledger and invariants -------------------------------------------------------------------------


async def list_ledger(
    uow: UnitOfWork, sku: str, warehouse_id: str, order_id: str, page_size: int, page_token: str
) -> tuple[list[Any], str]:
    size = _page_size(page_size)
    query = select(ledger_table).order_by(ledger_table.c.entry_id.desc()).limit(size + 1)
    conditions = []
    if sku:
        conditions.append(ledger_table.c.sku == sku)
    if warehouse_id:
        conditions.append(ledger_table.c.warehouse_id == warehouse_id)
    if order_id:
        conditions.append(ledger_table.c.order_id == order_id)
    if page_token:
        if not page_token.isdigit():
            raise InvalidArgument("page.page_token", "is not a token this API returned")
        conditions.append(ledger_table.c.entry_id < int(page_token))
    if conditions:
        query = query.where(and_(*conditions))
    async with uow:
        rows = list((await uow.conn.execute(query)).all())
    return rows[:size], str(rows[size - 1].entry_id) if len(rows) > size else ""


_INVARIANTS = text(
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


async def check_invariants(uow: UnitOfWork) -> tuple[int, list[inventory_pb2.InvariantBreach]]:
    """Recompute every row from the ledger and the open reservations; publish an alert on any breach."""
    async with uow:
        rows = (await uow.conn.execute(_INVARIANTS)).all()
        breaches = [
            inventory_pb2.InvariantBreach(
                sku=row.sku,
                warehouse_id=row.warehouse_id,
                on_hand=row.on_hand,
                ledger_on_hand=row.ledger_on_hand,
                reserved=row.reserved,
                ledger_reserved=row.ledger_reserved,
                open_reservation_units=row.open_units,
            )
            for row in rows
            if (row.on_hand, row.reserved) != (row.ledger_on_hand, row.ledger_reserved)
            or row.reserved != row.open_units
        ]
        if breaches:
            uow.publish("inventory.invariant_breached", events_pb2.InvariantBreached(breaches=breaches))
            await uow.commit()
    return len(rows), breaches


def _page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page.page_size", "must not be negative")
    return min(requested or 100, 1000)
