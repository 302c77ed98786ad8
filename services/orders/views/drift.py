"""The drift report: where a source system's latest word disagrees with the canonical status."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import any_, func, not_, select

from services.kit.errors import InvalidArgument
from services.kit.ids import new_id
from services.orders.domain.lifecycle import OrderStatus
from services.orders.store import OrdersUnitOfWork, drift_reports_table, orders_table, source_status_table

MAX_DRIFT_LIMIT: Final = 10_000


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


async def drift_report(uow: OrdersUnitOfWork, source: str = "", limit: int = 1000) -> DriftReport:
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


async def save_drift_report(uow: OrdersUnitOfWork, report: DriftReport) -> str:
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
