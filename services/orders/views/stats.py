"""The dashboard: orders per status, dwell per status, the exception ratio and stage durations, every
figure computed by Postgres and defined in words (`DEFINITIONS`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, extract, func, literal, or_, select, union_all

from services.kit.errors import InvalidArgument
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.store import OrdersUnitOfWork, orders_table, timeline_table
from services.orders.views.orders import scope_conditions

DEFAULT_STATS_WINDOW: Final = timedelta(days=30)

STAGES: Final = (
    "paid→allocated",
    "allocated→out_of_warehouse",
    "out_of_warehouse→shipped",
    "shipped→delivered",
)

DEFINITIONS: Final = (
    "Window: orders whose created_at is at or after created_from and before created_to "
    "(default: the 30 days up to now); every figure below counts only these orders.",
    "Orders per status: orders in the window by their current canonical status.",
    "Average dwell time per status: over every visit of an order to a status (its 'created' or "
    "'status_changed' timeline entry), the time until the order's next status change, or until now "
    "for the status it is still in; terminal statuses therefore count the time since the order ended.",
    "Exception ratio: orders in the window now in EXCEPTION divided by all orders in the window; "
    "0 when the window holds no orders.",
    "paid→allocated: from the first 'paid' timeline entry or change to PAID, whichever is earlier, "
    "to the first change to ALLOCATED.",
    "allocated→out_of_warehouse: from the first change to ALLOCATED to the first 'scanned_out' entry.",
    "out_of_warehouse→shipped: from the first 'scanned_out' entry to the first change to SHIPPED.",
    "shipped→delivered: from the first change to SHIPPED to the first change to DELIVERED.",
    "Stage durations count an order only when it reached both ends of the stage, the end not before "
    "the start; times are when the platform recorded each entry, in hours; p50 and p90 are "
    "interpolated percentiles (percentile_cont).",
)

_STATUS_ENTRY_KINDS: Final = ("created", "status_changed")
_TIMELINE_OF_ORDERS: Final = timeline_table.join(
    orders_table, orders_table.c.order_id == timeline_table.c.order_id
)


@dataclass(frozen=True)
class StatusStats:
    status: OrderStatus
    orders: int
    average_dwell_seconds: float


@dataclass(frozen=True)
class StageDuration:
    stage: str
    orders: int
    average_hours: float
    p50_hours: float
    p90_hours: float


@dataclass(frozen=True)
class OrderStats:
    created_from: datetime
    created_to: datetime
    statuses: list[StatusStats]
    total_orders: int
    exception_ratio: float
    stages: list[StageDuration]
    definitions: list[str]


async def order_stats(
    uow: OrdersUnitOfWork,
    created_from: datetime | None,
    created_to: datetime | None,
    scope: Scope = EVERYTHING,
) -> OrderStats:
    """Orders per status, dwell per status, the exception ratio and the stage-duration table for
    the orders created in the window and within the caller's scope (an agent's figures count only
    their customers' orders); `definitions` says exactly how each figure is computed."""
    async with uow:
        now = uow.clock.now()
        start = created_from or (created_to or now) - DEFAULT_STATS_WINDOW
        end = created_to or now
        for name, value in (("created_from", start), ("created_to", end)):
            if value.tzinfo is None:
                raise InvalidArgument(name, "needs a time zone")
        if end <= start:
            raise InvalidArgument("created_to", "must be after created_from")
        in_window = and_(
            orders_table.c.created_at >= start, orders_table.c.created_at < end, *scope_conditions(scope)
        )
        counts: dict[str, int] = dict(
            (
                await uow.conn.execute(
                    select(orders_table.c.status, func.count())
                    .where(in_window)
                    .group_by(orders_table.c.status)
                )
            ).all()
        )
        dwell = dict((await uow.conn.execute(_dwell_query(in_window, now))).all())
        stages = {row.stage: row for row in await uow.conn.execute(_stages_query(in_window))}
    total = sum(counts.values())
    return OrderStats(
        created_from=start,
        created_to=end,
        statuses=[
            StatusStats(status, counts.get(status.value, 0), float(dwell.get(status.value) or 0.0))
            for status in OrderStatus
        ],
        total_orders=total,
        exception_ratio=counts.get(OrderStatus.EXCEPTION.value, 0) / total if total else 0.0,
        stages=[_stage(name, stages.get(name)) for name in STAGES],
        definitions=list(DEFINITIONS),
    )


def _status_entry() -> ColumnElement[bool]:
    # "exception" entries also carry a to_status: the attempted one, which the order never entered
    t = timeline_table.c
    return and_(t.kind.in_(_STATUS_ENTRY_KINDS), t.to_status.is_not(None))


def _dwell_query(in_window: ColumnElement[bool], now: datetime) -> Select[Any]:
    t = timeline_table.c
    # Entries written in one transaction share `at`; "created" comes first among them whatever
    # order a batch insert gave their sequence numbers.
    left = func.lead(t.at).over(partition_by=t.order_id, order_by=(t.at, (t.kind != "created"), t.sequence))
    visits = (
        select(t.to_status.label("status"), t.at.label("entered"), left.label("left"))
        .select_from(_TIMELINE_OF_ORDERS)
        .where(in_window, _status_entry())
        .subquery("visits")
    )
    seconds = extract("epoch", func.coalesce(visits.c.left, now) - visits.c.entered)
    return select(visits.c.status, func.avg(seconds)).group_by(visits.c.status)


def _stages_query(in_window: ColumnElement[bool]) -> Select[Any]:
    t = timeline_table.c

    def first(condition: ColumnElement[bool]) -> Any:
        return func.min(t.at).filter(condition)

    def entered(status: OrderStatus) -> ColumnElement[bool]:
        return and_(_status_entry(), t.to_status == status.value)

    marks = (
        select(
            first(or_(t.kind == "paid", entered(OrderStatus.PAID))).label("paid"),
            first(entered(OrderStatus.ALLOCATED)).label("allocated"),
            first(t.kind == "scanned_out").label("out"),
            first(entered(OrderStatus.SHIPPED)).label("shipped"),
            first(entered(OrderStatus.DELIVERED)).label("delivered"),
        )
        .select_from(_TIMELINE_OF_ORDERS)
        .where(in_window)
        .group_by(t.order_id)
        .cte("marks")
    )
    m = marks.c
    spans = union_all(
        *(
            select(
                literal(stage).label("stage"), (extract("epoch", end - begin) / 3600).label("hours")
            ).where(end >= begin)
            for stage, begin, end in zip(
                STAGES,
                (m.paid, m.allocated, m.out, m.shipped),
                (m.allocated, m.out, m.shipped, m.delivered),
                strict=True,
            )
        )
    ).subquery("spans")
    hours = spans.c.hours
    return select(
        spans.c.stage,
        func.count().label("orders"),
        func.avg(hours).label("average"),
        func.percentile_cont(0.5).within_group(hours).label("p50"),
        func.percentile_cont(0.9).within_group(hours).label("p90"),
    ).group_by(spans.c.stage)


def _stage(name: str, row: Any) -> StageDuration:
    if row is None:
        return StageDuration(name, 0, 0.0, 0.0, 0.0)
    return StageDuration(name, row.orders, float(row.average), float(row.p50), float(row.p90))
