"""SLA timers for people: amber and red orders listed by queue, level and age, and counted per queue
and level for the dashboard, both read through the warning-time index (only timers already amber).
The level is computed at the moment of reading, so a list is right even while the SLA job is behind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, literal, select, text, tuple_

from services.orders.domain.sla import Level
from services.orders.store import OrdersUnitOfWork, orders_table
from services.orders.views import paging


@dataclass(frozen=True)
class TimerRow:
    order_id: str
    status: str
    queue: str
    level: Level
    started_at: datetime
    warn_at: datetime
    deadline: datetime
    owner: str
    escalated_to: str


async def sla_timers(
    uow: OrdersUnitOfWork, minimum: Level, queue: str, size: int, token: str
) -> tuple[datetime, list[TimerRow], dict[tuple[str, Level], int], str]:
    """(now, one page of the timers at `minimum` or worse, the most overdue first, the counts per
    queue and level over all pages, the next page's token)."""
    limit = paging.page_size(size)
    after = paging.decode_token(token, paging.SLA_TIMERS)
    async with uow:
        now = uow.clock.now()
        rows = await _timers(uow, now, minimum, queue, limit + 1, after)
        counts = await _counts(uow, now)
    more = len(rows) > limit
    rows = rows[:limit]
    next_token = paging.encode_token(paging.SLA_TIMERS, rows[-1].deadline, rows[-1].order_id) if more else ""
    return now, rows, counts, next_token


async def _timers(
    uow: OrdersUnitOfWork,
    now: datetime,
    minimum: Level,
    queue: str,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[TimerRow]:
    """Timers at `minimum` or worse now, the most overdue first (a red one sorts before an amber)."""
    o = orders_table.c
    query = (
        select(
            o.order_id,
            o.status,
            _queue().label("queue"),
            _level(now).label("level"),
            o.sla_started_at,
            o.sla_warn_at,
            o.sla_deadline,
            o.sla_owner,
            o.sla_escalated_to,
        )
        .where(*_at_least(now, minimum))
        .order_by(o.sla_deadline, o.order_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(o.sla_deadline, o.order_id) > tuple_(literal(after[0]), literal(after[1])))
    if queue:
        query = query.where(_queue() == queue)
    return [
        TimerRow(
            row.order_id,
            row.status,
            row.queue,
            Level(row.level),
            row.sla_started_at,
            row.sla_warn_at,
            row.sla_deadline,
            row.sla_owner,
            row.sla_escalated_to,
        )
        for row in await uow.conn.execute(query)
    ]


async def _counts(uow: OrdersUnitOfWork, now: datetime) -> dict[tuple[str, Level], int]:
    """Amber and red timers now, per queue and level (for the dashboard)."""
    query = (
        select(_queue().label("queue"), _level(now).label("level"), func.count().label("n"))
        .where(*_at_least(now, Level.AMBER))
        .group_by(text("queue"), text("level"))  # the output columns
    )
    return {(row.queue, Level(row.level)): row.n for row in await uow.conn.execute(query)}


def _queue() -> ColumnElement[str]:
    o = orders_table.c
    return o.sla_stage + "/" + func.coalesce(o.sla_terms["category"].astext, "")


def _level(now: datetime) -> ColumnElement[int]:
    o = orders_table.c
    return case((o.sla_deadline <= now, int(Level.RED)), else_=int(Level.AMBER))


def _at_least(now: datetime, minimum: Level) -> list[ColumnElement[bool]]:
    o = orders_table.c
    if minimum >= Level.RED:
        return [o.sla_deadline.is_not(None), o.sla_warn_at <= now, o.sla_deadline <= now]
    return [o.sla_deadline.is_not(None), o.sla_warn_at <= now]
