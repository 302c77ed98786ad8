"""The orders read side: lists, exports, the dashboard, timelines, drift, quarantine and dead letters.

Every list pages by keyset (newest first) with an opaque token, never by offset, so a page costs
the same deep in a large table and rows inserted meanwhile neither repeat nor vanish. Each call is
a handful of statements whatever the page size: lines come with their orders, aggregates are
computed by Postgres.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    extract,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import array

from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import is_id, new_id
from services.kit.sealing import KeyRing, SealError
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Channel
from services.orders.domain.payments import PaymentState
from services.orders.handlers import PaymentRecord, payment_record
from services.orders.scope import EVERYTHING, Scope, scope_conditions
from services.orders.store import (
    OrderRepository,
    Stored,
    drift_reports_table,
    orders_table,
    payments_table,
    quarantine_table,
    source_status_table,
    timeline_table,
)

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
DEFAULT_STATS_WINDOW: Final = timedelta(days=30)
MAX_DRIFT_LIMIT: Final = 10_000
HIDDEN_PAYLOAD: Final = "(hidden: contains personal data)"
UNREADABLE_PAYLOAD: Final = "(cannot be opened: sealed under a key this service no longer holds)"

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
# A token names the list it came from, so one list's token handed to another is refused, not misread.
_ORDERS, _QUARANTINE, _PAYMENTS, _DEAD_LETTERS = "o", "q", "p", "d"


# ---- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFilter:
    statuses: tuple[OrderStatus, ...] = ()
    channels: tuple[Channel, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    warehouse_id: str = ""
    buyer_id: str = ""
    buyer_phone: str = ""
    # row-level scope of the caller (set by the gateway, never by the caller's own filter)
    scope: Scope = EVERYTHING


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


@dataclass(frozen=True)
class TimelineRow:
    sequence: int
    at: datetime
    kind: str
    actor_type: str
    actor_id: str
    source: str
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    detail: str
    trace_id: str
    linked_trace_id: str = ""


@dataclass(frozen=True)
class Drift:
    order_id: str
    source: str
    canonical_status: OrderStatus
    source_status: str
    source_means: tuple[OrderStatus, ...]
    canonical_age_seconds: float
    source_age_seconds: float


@dataclass(frozen=True)
class DriftReport:
    drifts: list[Drift]
    # over every drift, also those beyond the listed limit
    per_source: dict[str, int]
    generated_at: datetime

    @property
    def drift_count(self) -> int:
        return sum(self.per_source.values())


@dataclass(frozen=True)
class QuarantineRow:
    quarantine_id: str
    channel: Channel | None
    channel_order_id: str
    error_field: str
    reason: str
    payload: str
    received_at: datetime


@dataclass(frozen=True)
class DeadLetterRow:
    dead_letter_id: str
    kind: str
    order_id: str
    error: str
    attempts: int
    failed_at: datetime


# ---- orders ------------------------------------------------------------------------------------


async def list_orders(
    uow: UnitOfWork, keys: KeyRing, filter: OrderFilter, page_size: int, page_token: str
) -> tuple[list[Stored], str]:
    """One page of the orders matching `filter`, newest first, and the token of the next page."""
    size = _page_size(page_size)
    after = _decode_token(page_token, _ORDERS)
    _check_filter(filter)
    async with uow:
        repo = OrderRepository(uow.conn, keys)
        rows = await repo.list(_order_conditions(filter, repo), after, size + 1)
    page = rows[:size]
    more = len(rows) > size
    return page, _encode_token(_ORDERS, page[-1].order.created_at, page[-1].order.order_id) if more else ""


async def export_orders(
    uow_factory: Callable[[], UnitOfWork],
    keys: KeyRing,
    filter: OrderFilter,
    chunk: int = 500,
    pause_seconds: float = 0.0,
) -> AsyncIterator[list[Stored]]:
    """Every order matching `filter`, newest first, in chunks. Each chunk is its own short
    transaction, so a slow consumer of a large export never holds one open."""
    if not 1 <= chunk <= MAX_PAGE_SIZE:
        raise InvalidArgument("chunk", f"must be between 1 and {MAX_PAGE_SIZE}")
    _check_filter(filter)
    after: tuple[datetime, str] | None = None
    while True:
        uow = uow_factory()
        async with uow:
            repo = OrderRepository(uow.conn, keys)
            rows = await repo.list(_order_conditions(filter, repo), after, chunk)
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        after = (rows[-1].order.created_at, rows[-1].order.order_id)
        if pause_seconds:
            await asyncio.sleep(pause_seconds)


def _check_filter(filter: OrderFilter) -> None:
    for name in ("created_from", "created_to"):
        value = getattr(filter, name)
        if value is not None and value.tzinfo is None:
            raise InvalidArgument(f"filter.{name}", "needs a time zone")
    if filter.created_from and filter.created_to and filter.created_to <= filter.created_from:
        raise InvalidArgument("filter.created_to", "must be after created_from")
    if len(filter.warehouse_id) > 64:
        raise InvalidArgument("filter.warehouse_id", "must be at most 64 characters")
    if len(filter.buyer_id) > 128:
        raise InvalidArgument("filter.buyer_id", "must be at most 128 characters")
    if len(filter.buyer_phone) > 64:
        raise InvalidArgument("filter.buyer_phone", "must be at most 64 characters")


def _order_conditions(filter: OrderFilter, repo: OrderRepository) -> list[ColumnElement[bool]]:
    o = orders_table.c
    conditions: list[ColumnElement[bool]] = []
    if filter.statuses:
        conditions.append(o.status.in_([status.value for status in filter.statuses]))
    if filter.channels:
        conditions.append(o.channel.in_([channel.value for channel in filter.channels]))
    if filter.created_from is not None:
        conditions.append(o.created_at >= filter.created_from)
    if filter.created_to is not None:
        conditions.append(o.created_at < filter.created_to)
    if filter.warehouse_id:
        # `@>` on the array, so the GIN index answers it
        conditions.append(o.warehouses.contains(array([filter.warehouse_id])))
    if filter.buyer_id:
        conditions.append(o.buyer_id == filter.buyer_id)
    if filter.buyer_phone.strip():
        conditions.append(o.phone_hash == repo.phone_hash(filter.buyer_phone))
    conditions += scope_conditions(filter.scope)
    return conditions


# ---- the dashboard -----------------------------------------------------------------------------


async def order_stats(
    uow: UnitOfWork,
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


# ---- one order's history -----------------------------------------------------------------------


async def timeline(uow: UnitOfWork, order_id: str) -> list[TimelineRow]:
    """The order's history, oldest first."""
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
    t = timeline_table.c
    async with uow:
        rows = list(
            await uow.conn.execute(
                select(timeline_table)
                .where(t.order_id == order_id)
                .order_by(t.at, (t.kind != "created"), t.sequence)
            )
        )
        if not rows:
            exists = await uow.conn.scalar(select(literal(True)).where(orders_table.c.order_id == order_id))
            if not exists:
                raise NotFound(f"order {order_id} not found")
    return [
        TimelineRow(
            sequence=row.sequence,
            at=row.at,
            kind=row.kind,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            source=row.source,
            from_status=OrderStatus(row.from_status) if row.from_status else None,
            to_status=OrderStatus(row.to_status) if row.to_status else None,
            detail=row.detail,
            trace_id=row.trace_id,
            linked_trace_id=row.linked_trace_id,
        )
        for row in rows
    ]


# ---- drift -------------------------------------------------------------------------------------


async def drift_report(uow: UnitOfWork, source: str = "", limit: int = 1000) -> DriftReport:
    """Every (order, source) whose source's latest word does not agree with the canonical status,
    longest-standing first (up to `limit`), and how many drift per source in all."""
    source = source.strip().upper()
    if len(source) > 32:
        raise InvalidArgument("source", "must be at most 32 characters, e.g. WMS")
    limit = limit or 1000
    if not 1 <= limit <= MAX_DRIFT_LIMIT:
        raise InvalidArgument("limit", f"must be between 1 and {MAX_DRIFT_LIMIT} (0 means 1000)")
    s, o = source_status_table.c, orders_table.c
    conditions = [func.cardinality(s.means) > 0, not_(o.status == any_(s.means))]
    if source:
        conditions.append(s.source == source)
    joined = source_status_table.join(orders_table, o.order_id == s.order_id)
    changed_at = func.coalesce(o.status_changed_at, o.updated_at)
    async with uow:
        now = uow.clock.now()
        rows = await uow.conn.execute(
            select(
                s.order_id,
                s.source,
                o.status,
                s.raw_status,
                s.means,
                changed_at.label("changed_at"),
                s.reported_at,
            )
            .select_from(joined)
            .where(*conditions)
            .order_by(func.greatest(changed_at, s.reported_at), s.order_id, s.source)
            .limit(limit)
        )
        drifts = [
            Drift(
                order_id=row.order_id,
                source=row.source,
                canonical_status=OrderStatus(row.status),
                source_status=row.raw_status,
                source_means=tuple(status for status in OrderStatus if status.value in row.means),
                canonical_age_seconds=(now - row.changed_at).total_seconds(),
                source_age_seconds=(now - row.reported_at).total_seconds(),
            )
            for row in rows
        ]
        per_source: dict[str, int] = dict(
            (
                await uow.conn.execute(
                    select(s.source, func.count()).select_from(joined).where(*conditions).group_by(s.source)
                )
            ).all()
        )
    return DriftReport(drifts=drifts, per_source=per_source, generated_at=now)


async def save_drift_report(uow: UnitOfWork, report: DriftReport) -> str:
    """Keep a report (the daily job's result) and return its id."""
    report_id = new_id()
    async with uow:
        await uow.conn.execute(
            drift_reports_table.insert().values(
                report_id=report_id,
                generated_at=report.generated_at,
                drift_count=report.drift_count,
                per_source=report.per_source,
                drifts=[asdict(drift) for drift in report.drifts],
            )
        )
        await uow.commit()
    return report_id


# ---- quarantine, payments, dead letters --------------------------------------------------------


async def list_quarantine(
    uow: UnitOfWork, keys: KeyRing, channel: Channel | None, page_size: int, page_token: str, reveal: bool
) -> tuple[list[QuarantineRow], str]:
    """Payloads that could not be ingested, newest first; the payload is opened only on `reveal`
    (the caller checks the permission to see personal data)."""
    size = _page_size(page_size)
    after = _decode_token(page_token, _QUARANTINE)
    q = quarantine_table.c
    query = select(quarantine_table).order_by(q.received_at.desc(), q.quarantine_id.desc()).limit(size + 1)
    if channel is not None:
        query = query.where(q.channel == channel.value)
    if after is not None:
        query = query.where(tuple_(q.received_at, q.quarantine_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [
        QuarantineRow(
            quarantine_id=row.quarantine_id,
            channel=_channel(row.channel),
            channel_order_id=row.channel_order_id,
            error_field=row.error_field,
            reason=row.reason,
            payload=_payload(keys, row.sealed_payload, row.quarantine_id) if reveal else HIDDEN_PAYLOAD,
            received_at=row.received_at,
        )
        for row in rows[:size]
    ]
    more = len(rows) > size
    return page, _encode_token(_QUARANTINE, page[-1].received_at, page[-1].quarantine_id) if more else ""


def _channel(value: str) -> Channel | None:
    try:
        return Channel(value)
    except ValueError:  # quarantined because the channel itself was missing or unknown
        return None


def _payload(keys: KeyRing, sealed: str, quarantine_id: str) -> str:
    try:
        return keys.open(sealed, quarantine_id).decode("utf-8", errors="replace")
    except SealError:
        # one unreadable row must not hide the rest of the page from the people fixing the others
        log.warning("quarantined payload %s cannot be opened", quarantine_id)
        return UNREADABLE_PAYLOAD


async def list_payments(
    uow: UnitOfWork,
    state: str = "",
    order_id: str = "",
    page_size: int = DEFAULT_PAGE_SIZE,
    page_token: str = "",
) -> tuple[list[PaymentRecord], str]:
    """Stored payment notifications, newest received first, optionally of one state or order."""
    size = _page_size(page_size)
    after = _decode_token(page_token, _PAYMENTS)
    p = payments_table.c
    query = select(payments_table).order_by(p.received_at.desc(), p.payment_id.desc()).limit(size + 1)
    if state:
        if state not in {known.value for known in PaymentState}:
            raise InvalidArgument("state", "must be one of " + ", ".join(PaymentState))
        query = query.where(p.state == state)
    if order_id:
        if not is_id(order_id):
            raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
        query = query.where(p.order_id == order_id)
    if after is not None:
        query = query.where(tuple_(p.received_at, p.payment_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [payment_record(row._mapping) for row in rows[:size]]
    more = len(rows) > size
    return page, _encode_token(_PAYMENTS, page[-1].received_at, page[-1].payment_id) if more else ""


async def list_dead_letters(
    uow: UnitOfWork, page_size: int = DEFAULT_PAGE_SIZE, page_token: str = ""
) -> tuple[list[DeadLetterRow], str]:
    """Work that failed after its retries, newest first: payment notifications and order steps."""
    size = _page_size(page_size)
    after = _decode_token(page_token, _DEAD_LETTERS)
    p, o = payments_table.c, orders_table.c
    letters = union_all(
        select(
            (literal("payment:") + p.payment_id).label("dead_letter_id"),
            literal("payment_notification").label("kind"),
            func.coalesce(p.order_id, "").label("order_id"),
            p.reason.label("error"),
            p.attempts.label("attempts"),
            p.updated_at.label("failed_at"),
        ).where(p.state == PaymentState.DEAD.value),
        select(
            (literal("step:") + o.order_id).label("dead_letter_id"),
            literal("order_step").label("kind"),
            o.order_id.label("order_id"),
            o.step_error.label("error"),
            o.step_attempts.label("attempts"),
            func.coalesce(o.step_failed_at, o.updated_at).label("failed_at"),
        ).where(o.step_dead.is_(True)),
    ).subquery("letters")
    d = letters.c
    query = select(letters).order_by(d.failed_at.desc(), d.dead_letter_id.desc()).limit(size + 1)
    if after is not None:
        query = query.where(tuple_(d.failed_at, d.dead_letter_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [
        DeadLetterRow(row.dead_letter_id, row.kind, row.order_id, row.error, row.attempts, row.failed_at)
        for row in rows[:size]
    ]
    more = len(rows) > size
    return page, _encode_token(_DEAD_LETTERS, page[-1].failed_at, page[-1].dead_letter_id) if more else ""


# ---- paging ------------------------------------------------------------------------------------


def _page_size(page_size: int) -> int:
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            "page.page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"
        )
    return page_size


def _encode_token(kind: str, at: datetime, key: str) -> str:
    raw = json.dumps([kind, at.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, kind: str) -> tuple[datetime, str] | None:
    """The (time, id) the previous page ended at; None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        token_kind, at, key = json.loads(raw)
        if token_kind == kind and isinstance(at, str) and isinstance(key, str) and key:
            after = datetime.fromisoformat(at)
            if after.tzinfo is not None:
                return after, key
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidArgument("page.page_token", "is not a token this list returned; start again without one")
