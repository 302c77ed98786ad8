"""Reservations: reserve all lines or none, commit on payment, release, move between warehouses, expire."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from services.inventory.domain.events import ReservationCommitted, ReservationExpired, ReservationReleased
from services.inventory.domain.model import (
    Line,
    Movement,
    Placement,
    Reservation,
    ReservationStatus,
    ReserveOutcome,
    Shortage,
    StockLevel,
    bucket_units,
    check_reference,
    reservation_lines,
    shortage,
    stock_level,
)
from services.inventory.domain.policy import LowStockScope, Policy
from services.inventory.handlers.ports import UnitOfWork
from services.inventory.handlers.safety import apply_signals
from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id

log = logging.getLogger(__name__)

NewUnitOfWork = Callable[[], UnitOfWork]
MIN_TTL, MAX_TTL = timedelta(seconds=10), timedelta(days=7)
MAX_REASON = 500
# how long the desk goes on sending a row's reservations alone after a group found the row split
BUCKETED_HINT_SECONDS = 60.0


async def reserve(
    new_uow: NewUnitOfWork,
    policy: Policy,
    order_id: str,
    requested: list[Line],
    ttl: timedelta | None = None,
    *,
    bucketed: bool = False,
) -> ReserveOutcome:
    """All lines or none; a repeat returns the order's reservation. Room held by reservations past their
    time is freed first (before the sweeper gets to them), outside any open transaction. `bucketed`:
    the one line's row is known to be split into buckets."""
    check_reference("order_id", order_id)
    lines = reservation_lines(requested)
    if ttl is not None and not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidArgument("ttl_seconds", "must be between 10 seconds and 7 days")
    # in pool scope every reservation may move a pool's safety stock: the one statement cannot tell
    fast = policy.low_stock_scope != LowStockScope.POOL
    for attempt in (1, 2):
        async with new_uow() as uow:
            now = uow.clock.now()
            expires_at = now + (ttl or policy.reservation_ttl)
            reservation = Reservation.place(new_id(), order_id, lines, expires_at, now)
            placement, rows = await uow.stock.reserve(
                reservation, policy.cap_basis_points, fast=fast, bucketed=bucketed and fast
            )
            if placement is Placement.RESERVED:
                await apply_signals(policy, uow, rows)
                await uow.commit()
                return ReserveOutcome(True, reservation, lines)
            held = None
            if placement is Placement.HELD:
                held = await uow.reservations.latest(order_id)
                assert held is not None, "the conflicting reservation is live and cannot vanish"
                if attempt == 2 or not held.expired_at(now):
                    if held.lines != lines:
                        raise FailedPrecondition(f"order {order_id} already holds a different reservation")
                    return ReserveOutcome(True, held, held.lines)
        if attempt == 2 or placement is Placement.SOLD_OUT:
            break  # SOLD_OUT: no hold past its time on the row, nothing to free
        # free what has lapsed, outside any open transaction (one pooled connection per request): the
        # order's own hold past its time, or holds past their time on the rows that came up short
        stale = (held or reservation).lines
        if not await expire_reservations(new_uow(), policy, keys=[line.key for line in stale]) and not held:
            break
        fast = False
    # a repeat of a reservation that took the last units finds no room for itself: it is answered
    # with the reservation the order holds, as any other repeat is, never as a shortage
    async with new_uow() as uow:  # one read for both: the order's hold, else what each line lacks
        held = await uow.reservations.latest(order_id)
        if held is not None and not held.holds_at(uow.clock.now()):
            held = None
        lacking = None if held is not None else await _lacking(uow, policy, lines)
    if lacking is None:
        assert held is not None
        if held.lines != lines:
            raise FailedPrecondition(f"order {order_id} already holds a different reservation")
        return ReserveOutcome(True, held, held.lines)
    return ReserveOutcome(False, shortages=_shortages_of(lacking, lines, requested))


@dataclass(frozen=True)
class _Placing:
    order_id: str
    lines: tuple[Line, ...]
    ttl: timedelta | None
    traceparent: str


class ReserveDesk:
    """Where one-line reservations are placed: those arriving while an earlier group is being written
    go together in one transaction (a group commit, `kit.batching`), one statement each, sorted by
    stock row. A hot SKU's row is then locked once per group instead of handed from one waiting
    statement to the next. A group waits at most `GROUP_LOCK_TIMEOUT_MS` for a row another
    transaction holds, then fails: one held row never stalls the reservations queued behind it.
    What a group cannot place at once (short, held by the order already, a safety level crossed),
    every reservation of a group whose transaction failed, and a group of one are placed by
    `reserve` alone, outside the desk, exactly as if they had come alone (a lone one-line
    reservation is one statement with no transaction); reservations of several lines always are.
    So are those of a row split into buckets, once a group has found it split (for
    `BUCKETED_HINT_SECONDS`): each takes from its own bucket, and a group would lock several."""

    def __init__(self, new_uow: NewUnitOfWork, policy: Policy, *, max_batch: int = 100) -> None:
        self.new_uow = new_uow
        self.policy = policy
        # two groups at once: each locks its rows in ascending order, so they never wait in a circle
        self._batcher: Batcher[_Placing, ReserveOutcome | None] = Batcher(
            self._together, linger=0, max_batch=max_batch, in_flight=2
        )
        self._split_seen: dict[tuple[str, str], float] = {}

    def _split(self, key: tuple[str, str]) -> bool:
        seen = self._split_seen.get(key)
        return seen is not None and time.monotonic() - seen < BUCKETED_HINT_SECONDS

    @property
    def batches(self) -> int:
        """How many groups were written together (for the tests and the benchmark)."""
        return self._batcher.batches

    async def reserve(
        self, order_id: str, requested: list[Line], ttl: timedelta | None = None
    ) -> ReserveOutcome:
        check_reference("order_id", order_id)
        lines = reservation_lines(requested)
        one_row = len(lines) == 1 and self.policy.low_stock_scope != LowStockScope.POOL
        if one_row and self._split(lines[0].key):
            return await reserve(self.new_uow, self.policy, order_id, requested, ttl, bucketed=True)
        if one_row and (ttl is None or MIN_TTL <= ttl <= MAX_TTL):
            placing = _Placing(order_id, lines, ttl, tracing.current_traceparent())
            answered = await self._batcher.submit(placing)
            if answered is not None:
                return answered
        bucketed = one_row and self._split(lines[0].key)
        return await reserve(self.new_uow, self.policy, order_id, requested, ttl, bucketed=bucketed)

    async def _together(self, items: list[_Placing]) -> list[ReserveOutcome | BaseException | None]:
        """Each item placed, answered short, or (None) left for `reserve` alone."""
        answers: list[ReserveOutcome | BaseException | None] = [None] * len(items)
        if len(items) == 1:
            return answers  # alone: `reserve`'s one statement commits by itself, with no transaction
        order = sorted(range(len(items)), key=lambda i: items[i].lines[0].key)
        try:
            async with self.new_uow() as uow:
                now = uow.clock.now()
                reservations = [
                    Reservation.place(
                        new_id(),
                        items[i].order_id,
                        items[i].lines,
                        now + (items[i].ttl or self.policy.reservation_ttl),
                        now,
                    )
                    for i in order
                ]
                placed = await uow.stock.reserve_together(
                    reservations, self.policy.cap_basis_points, [items[i].traceparent for i in order]
                )
        except Exception:
            log.warning("%d reservations failed together; each is placed alone", len(items), exc_info=True)
            return answers
        short = []
        for index, reservation, placement in zip(order, reservations, placed, strict=True):
            if placement is Placement.RESERVED:
                answers[index] = ReserveOutcome(True, reservation, items[index].lines)
            elif placement is Placement.SHORT:
                short.append(index)
            elif placement is Placement.BUCKETED:
                self._split_seen[items[index].lines[0].key] = time.monotonic()
        if short:
            try:
                for index, answer in zip(short, await self._short([items[i] for i in short]), strict=True):
                    answers[index] = answer
            except Exception:
                log.warning("%d shortages failed together; each is asked alone", len(short), exc_info=True)
        return answers

    async def _short(self, items: list[_Placing]) -> list[ReserveOutcome | None]:
        """The group's short items, as `reserve` answers them: holds past their time on those rows are
        freed first, in one transaction (then each is tried again alone); the rows are read once; an
        order that already holds a reservation (a repeat, one lookup per order) is left to `reserve`,
        which answers it with what it holds; the others get their shortage. An unknown row is left
        to `reserve`, which names it."""
        keys = sorted({item.lines[0].key for item in items})
        if await expire_reservations(self.new_uow(), self.policy, keys=keys):
            return [None] * len(items)
        answers: list[ReserveOutcome | None] = []
        async with self.new_uow() as uow:
            now = uow.clock.now()
            levels = await _levels(uow, self.policy, [item.lines[0] for item in items])
            for item in items:
                held = await uow.reservations.latest(item.order_id)
                if held is not None and held.holds_at(now):
                    answers.append(None)  # a repeat: `reserve` answers it with what the order holds
                    continue
                (line,) = item.lines
                level = levels.get(line.key)
                if level is None:
                    answers.append(None)
                    continue
                found = shortage(line, level)
                answers.append(ReserveOutcome(False, shortages=[found]) if found is not None else None)
        return answers


async def _levels(
    uow: UnitOfWork, policy: Policy, lines: Sequence[Line]
) -> dict[tuple[str, str], StockLevel]:
    """The stock level of each line's row that exists, in one read (expired holds not counted)."""
    rows = await uow.stock.levels(
        [line.sku for line in lines], [line.warehouse_id for line in lines], uow.clock.now()
    )
    return {row.key: stock_level(row, policy.cap_basis_points, expired) for row, expired in rows}


@dataclass(frozen=True)
class _Lacking:
    levels: dict[tuple[str, str], StockLevel]
    unknown_skus: set[str]
    unknown_warehouses: set[str]


async def _shortages(
    uow: UnitOfWork, policy: Policy, lines: Sequence[Line], requested: Sequence[Line]
) -> list[Shortage]:
    """What each line lacks; a line naming an unknown SKU or warehouse is refused, by its request index."""
    async with uow:
        lacking = await _lacking(uow, policy, lines)
    return _shortages_of(lacking, lines, requested)


async def _lacking(uow: UnitOfWork, policy: Policy, lines: Sequence[Line]) -> _Lacking:
    """The lines' stock levels and which of their SKUs and warehouses are unknown (inside `uow`)."""
    levels = await _levels(uow, policy, lines)
    missing = [line for line in lines if line.key not in levels]
    unknown_skus, unknown_warehouses = (
        await uow.catalogue.unknown((line.sku for line in missing), (line.warehouse_id for line in missing))
        if missing
        else (set(), set())
    )
    return _Lacking(levels, set(unknown_skus), set(unknown_warehouses))


def _shortages_of(lacking: _Lacking, lines: Sequence[Line], requested: Sequence[Line]) -> list[Shortage]:
    for index, line in enumerate(requested):
        if line.sku in lacking.unknown_skus:
            raise InvalidArgument(f"lines[{index}].sku", f"unknown SKU {line.sku}")
        if line.warehouse_id in lacking.unknown_warehouses:
            raise InvalidArgument(f"lines[{index}].warehouse_id", f"unknown warehouse {line.warehouse_id}")
    return [found for line in lines if (found := shortage(line, lacking.levels.get(line.key))) is not None]


async def commit_reservation(
    new_uow: NewUnitOfWork, policy: Policy, order_id: str
) -> tuple[Reservation, tuple[Line, ...]]:
    """Payment confirmed: reserved units leave on hand. A released or expired reservation never commits."""
    check_reference("order_id", order_id)
    async with new_uow() as uow:
        now = uow.clock.now()
        committed = await uow.reservations.transition(
            order_id, ReservationStatus.ACTIVE, ReservationStatus.COMMITTED, now, unexpired_at=now
        )
        if committed is not None:
            lines = committed.lines
            await uow.stock.settle(lines, deduct=True, buckets=bucket_units([committed]))
            await uow.ledger.record(
                Movement.COMMIT,
                now,
                ((line.sku, line.warehouse_id, -line.quantity, -line.quantity) for line in lines),
                order_id=order_id,
            )
            uow.emit(ReservationCommitted(order_id, committed.reservation_id, lines))
            await uow.commit()
            return committed, lines
        latest = await uow.reservations.latest(order_id)
    if latest is None:
        raise NotFound(f"order {order_id} has no reservation")
    if latest.status is ReservationStatus.COMMITTED:
        return latest, latest.lines
    if latest.status is ReservationStatus.ACTIVE:
        await expire_reservations(new_uow(), policy, keys=[line.key for line in latest.lines])
        raise FailedPrecondition(f"the reservation of order {order_id} expired; reserve again")
    raise FailedPrecondition(
        f"the reservation of order {order_id} is {latest.status} and cannot be committed"
    )


async def release_reservation(
    new_uow: NewUnitOfWork, policy: Policy, order_id: str, reason: str
) -> tuple[Reservation, tuple[Line, ...]]:
    """The order no longer needs its units (cancelled, re-planned); a repeat answers as the first."""
    check_reference("order_id", order_id)
    reason = reason[:MAX_REASON]
    async with new_uow() as uow:
        now = uow.clock.now()
        released = await uow.reservations.transition(
            order_id, ReservationStatus.ACTIVE, ReservationStatus.RELEASED, now
        )
        if released is not None:
            lines = released.lines
            stock = await uow.stock.settle(lines, deduct=False, buckets=bucket_units([released]))
            await uow.ledger.record(
                Movement.RELEASE,
                now,
                ((line.sku, line.warehouse_id, 0, -line.quantity) for line in lines),
                order_id=order_id,
                reason=reason,
            )
            uow.emit(ReservationReleased(order_id, released.reservation_id, lines, reason))
            await apply_signals(policy, uow, stock)
            await uow.commit()
            return released, lines
        latest = await uow.reservations.latest(order_id)
    if latest is None:
        raise NotFound(f"order {order_id} has no reservation")
    if latest.status is ReservationStatus.COMMITTED:
        raise FailedPrecondition(
            f"the reservation of order {order_id} is committed; restock a return instead"
        )
    return latest, latest.lines


async def move_reservation(
    new_uow: NewUnitOfWork, policy: Policy, order_id: str, sku: str, from_warehouse: str, to_warehouse: str
) -> tuple[Reservation, tuple[Line, ...], Shortage | None]:
    """Re-routing: reserve at the target and release at the source in one transaction, or do nothing."""
    check_reference("order_id", order_id)
    check_reference("sku", sku)
    check_reference("from_warehouse_id", from_warehouse)
    check_reference("to_warehouse_id", to_warehouse)
    if from_warehouse == to_warehouse:
        raise InvalidArgument("to_warehouse_id", "must differ from from_warehouse_id")
    async with new_uow() as uow:
        now = uow.clock.now()
        reservation = await uow.reservations.latest(order_id, for_update=True)
        if reservation is None:
            raise NotFound(f"order {order_id} has no reservation")
        if reservation.status is not ReservationStatus.ACTIVE or reservation.expires_at <= now:
            raise FailedPrecondition(
                f"only an active reservation can move; order {order_id}'s is {reservation.status}"
            )
        lines = reservation.lines
        moving = next((line for line in lines if line.key == (sku, from_warehouse)), None)
        if moving is None:
            raise NotFound(f"order {order_id} reserves no {sku} at {from_warehouse}")
        if any(line.key == (sku, to_warehouse) for line in lines):
            raise FailedPrecondition(f"order {order_id} already reserves {sku} at {to_warehouse}")
        target = Line(sku, to_warehouse, moving.quantity)
        changed = await uow.stock.move(
            reservation.reservation_id,
            moving,
            to_warehouse,
            policy.cap_basis_points,
            reservation.buckets.get(moving.key),
        )
        if changed is not None:
            await uow.ledger.record(
                Movement.MOVE_OUT, now, [(sku, from_warehouse, 0, -moving.quantity)], order_id=order_id
            )
            await uow.ledger.record(
                Movement.MOVE_IN, now, [(sku, to_warehouse, 0, moving.quantity)], order_id=order_id
            )
            await apply_signals(policy, uow, changed)
            await uow.commit()
            moved = tuple(sorted(target if line == moving else line for line in lines))
            buckets = {key: bucket for key, bucket in reservation.buckets.items() if key != moving.key}
            return replace(reservation, lines=moved, buckets=buckets), moved, None
    shortages = await _shortages(new_uow(), policy, [target], [target])
    return reservation, lines, shortages[0] if shortages else None


async def get_reservation(uow: UnitOfWork, order_id: str) -> tuple[Reservation, tuple[Line, ...]]:
    check_reference("order_id", order_id)
    async with uow:
        reservation = await uow.reservations.latest(order_id)
    if reservation is None:
        raise NotFound(f"order {order_id} has no reservation")
    return reservation, reservation.lines


async def expire_reservations(uow: UnitOfWork, policy: Policy, keys: Sequence[tuple[str, str]] = ()) -> int:
    """Release unpaid reservations past their TTL and announce them; the orders service cancels the orders."""
    async with uow:
        now = uow.clock.now()
        due = await uow.reservations.claim_expired(now, policy.sweep_batch, keys)
        if not due:
            return 0
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for reservation in due:
            for line in reservation.lines:
                totals[line.key] += line.quantity
            await uow.ledger.record(
                Movement.EXPIRE,
                now,
                ((line.sku, line.warehouse_id, 0, -line.quantity) for line in reservation.lines),
                order_id=reservation.order_id,
            )
            uow.emit(
                ReservationExpired(
                    reservation.order_id,
                    reservation.reservation_id,
                    reservation.lines,
                    reservation.expires_at,
                )
            )
        await uow.reservations.mark([r.reservation_id for r in due], ReservationStatus.EXPIRED, now)
        stock = await uow.stock.settle(
            sorted(Line(sku, warehouse, quantity) for (sku, warehouse), quantity in totals.items()),
            deduct=False,
            buckets=bucket_units(due),
        )
        await apply_signals(policy, uow, stock)
        await uow.commit()
    return len(due)
