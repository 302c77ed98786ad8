"""Alert records: an occurrence folds into its open record in one INSERT … ON CONFLICT (after its event
id is claimed, so a redelivery counts once); transitions are written after a locked read; the
escalation job reads the due rows only (partial index on escalate_at); the list is newest first."""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.domain.alert_records import (
    AlertFilter,
    AlertRecord,
    AlertState,
    Raised,
    chain_document,
    chain_of,
)
from services.gateway.store.tables import alert_events_table, alerts_table
from services.kit.errors import InvalidArgument

A = alerts_table.c


def _row(record: AlertRecord) -> dict[str, Any]:
    return {
        "alert_id": record.alert_id,
        "fold_key": record.fold_key[:300],
        "state": record.state.value,
        "kind": record.kind[:64],
        "severity": record.severity,
        "source": record.source[:32],
        "order_id": record.order_id[:64],
        "message": record.message[:4000],
        "customer_id": record.customer_id[:64],
        "channel": record.channel[:32],
        "roles": [role[:32] for role in record.roles],
        "count": record.count,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "chain": chain_document(record.chain),
        "level": record.level,
        "assigned_to": record.assigned_to[:80],
        # whole seconds, never rounded down to "never"
        "escalate_after_s": math.ceil(record.escalate_after.total_seconds())
        if record.escalate_after
        else None,
        "escalate_at": record.escalate_at,
        "acknowledged_by": record.acknowledged_by[:128],
        "acknowledged_at": record.acknowledged_at,
        "acknowledge_note": record.acknowledge_note,
        "resolved_by": record.resolved_by[:128],
        "resolved_at": record.resolved_at,
        "resolution": record.resolution,
        "notified_level": record.notified_level,
    }


def _record(row: Any) -> AlertRecord:
    values = dict(row)
    values.pop("assigned_to", None)
    after = values.pop("escalate_after_s")
    return AlertRecord(
        **{
            **values,
            "state": AlertState(values["state"]),
            "roles": tuple(values["roles"]),
            "chain": chain_of(values["chain"]),
            "escalate_after": timedelta(seconds=after) if after else None,
        }
    )


async def fold(conn: AsyncConnection, raised: Raised, new: AlertRecord) -> tuple[AlertRecord, bool] | None:
    """The record the occurrence counts into, and whether it opened it (`new` is what it would open);
    None when this event id was counted before."""
    claimed = await conn.execute(
        insert(alert_events_table)
        .values(event_id=raised.event_id[:64], received_at=raised.at)
        .on_conflict_do_nothing()
        .returning(alert_events_table.c.event_id)
    )
    if claimed.first() is None:
        return None
    statement = insert(alerts_table).values(_row(new))
    excluded = statement.excluded
    row = (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[A.fold_key],
                # the index's own predicate, as a literal: with a bound value a generic plan (a
                # prepared statement's sixth run on a connection) cannot infer the arbiter index
                index_where=text("state <> 'RESOLVED'"),
                set_={
                    "count": A.count + 1,
                    "last_seen": func.greatest(A.last_seen, excluded.last_seen),
                    "severity": func.greatest(A.severity, excluded.severity),
                    "message": excluded.message,
                },
            ).returning(*alerts_table.c)
        )
    ).one()
    await conn.execute(
        update(alert_events_table)
        .where(alert_events_table.c.event_id == raised.event_id[:64])
        .values(alert_id=row.alert_id)
    )
    return _record(row._mapping), row.alert_id == new.alert_id


async def locked(conn: AsyncConnection, alert_id: str) -> AlertRecord | None:
    row = (await conn.execute(select(alerts_table).where(A.alert_id == alert_id).with_for_update())).first()
    return None if row is None else _record(row._mapping)


async def save(conn: AsyncConnection, record: AlertRecord) -> None:
    """Write a transition or an escalation of a record read with `locked` or `due`."""
    row = _row(record)
    changed = {
        name: row[name]
        for name in (
            "state",
            "level",
            "assigned_to",
            "escalate_at",
            "acknowledged_by",
            "acknowledged_at",
            "acknowledge_note",
            "resolved_by",
            "resolved_at",
            "resolution",
        )
    }
    await conn.execute(update(alerts_table).where(A.alert_id == record.alert_id).values(**changed))


async def notified(conn: AsyncConnection, alert_id: str, level: int) -> None:
    """The assignee at `level` was told (a later escalation is not marked by an earlier delivery)."""
    await conn.execute(
        update(alerts_table)
        .where(A.alert_id == alert_id, A.level == level)
        .values(notified_level=func.greatest(func.coalesce(A.notified_level, -1), level))
    )


async def owed_for_event(conn: AsyncConnection, event_id: str) -> AlertRecord | None:
    """The open record an event was counted into, when its first assignee is still to be told (owed
    escalations are the escalation job's)."""
    row = (
        await conn.execute(
            select(alerts_table)
            .join(alert_events_table, alert_events_table.c.alert_id == A.alert_id)
            .where(alert_events_table.c.event_id == event_id[:64], A.level == 0, _owed())
        )
    ).first()
    return None if row is None else _record(row._mapping)


def _owed() -> Any:
    return (A.state == AlertState.OPEN.value) & (A.notified_level.is_(None) | (A.notified_level < A.level))


def owed_escalations_query(limit: int) -> Select[Any]:
    """Escalations committed whose delivery never happened (partial index alerts_escalation_owed)."""
    return select(alerts_table).where(A.level > 0, _owed()).order_by(A.alert_id).limit(limit)


def owed_first_notices_query(opened_before: datetime, limit: int) -> Select[Any]:
    """Records whose first assignee was never told, opened before `opened_before` (a delivery still in
    flight is younger; partial index alerts_first_notice_owed)."""
    return (
        select(alerts_table)
        .where(
            A.state == AlertState.OPEN.value,
            A.level == 0,
            A.notified_level.is_(None),
            A.first_seen < opened_before,
        )
        .order_by(A.first_seen)
        .limit(limit)
    )


async def owed_escalations(
    conn: AsyncConnection, limit: int, opened_before: datetime | None = None
) -> list[AlertRecord]:
    """Deliveries owed: committed escalations, and (given `opened_before`) first notices."""
    rows = list((await conn.execute(owed_escalations_query(limit))).all())
    if opened_before is not None:
        rows += (await conn.execute(owed_first_notices_query(opened_before, limit))).all()
    return [_record(row._mapping) for row in rows]


def due_query(now: datetime, limit: int) -> Select[Any]:
    """The open alerts whose escalation is due, oldest due first; rows another job holds are skipped."""
    return (
        select(alerts_table)
        .where(A.escalate_at.is_not(None), A.escalate_at <= now)
        .order_by(A.escalate_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[AlertRecord]:
    return [_record(row._mapping) for row in (await conn.execute(due_query(now, limit))).all()]


def _assigned(label: str) -> Any:
    kind, _, name = label.partition(":")
    if kind not in ("role", "person") or not name:
        raise InvalidArgument("assigned_to", "must be role:NAME or person:NAME")
    if kind == "role":
        # an alert addressed to the role by its producer counts as the role's too
        return or_(A.assigned_to == label, A.roles.contains([name]))
    return A.assigned_to == label


async def page(
    conn: AsyncConnection, filters: AlertFilter, page_size: int, page_token: str
) -> tuple[list[AlertRecord], str]:
    """Newest first (by when it was last seen); a page token continues after the last record given."""
    if not 0 <= page_size <= 500:
        raise InvalidArgument("page.page_size", "must be between 0 and 500")
    size = page_size or 50
    query = select(alerts_table)
    if filters.state is not None:
        query = query.where(A.state == filters.state.value)
    if filters.min_severity:
        query = query.where(A.severity >= filters.min_severity)
    for column, value in ((A.kind, filters.kind), (A.source, filters.source), (A.order_id, filters.order_id)):
        if value:
            query = query.where(column == value)
    if filters.assigned_to:
        query = query.where(_assigned(filters.assigned_to))
    if page_token:
        seen, alert_id = _decode_token(page_token)
        query = query.where((A.last_seen < seen) | ((A.last_seen == seen) & (A.alert_id < alert_id)))
    rows = (await conn.execute(query.order_by(A.last_seen.desc(), A.alert_id.desc()).limit(size + 1))).all()
    records = [_record(row._mapping) for row in rows[:size]]
    token = _encode_token(records[-1].last_seen, records[-1].alert_id) if len(rows) > size else ""
    return records, token


class AlertRepository:
    """The alert records of one unit of work's connection (see the functions above)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def fold(self, raised: Raised, new: AlertRecord) -> tuple[AlertRecord, bool] | None:
        return await fold(self.conn, raised, new)

    async def locked(self, alert_id: str) -> AlertRecord | None:
        return await locked(self.conn, alert_id)

    async def save(self, record: AlertRecord) -> None:
        await save(self.conn, record)

    async def due(self, now: datetime, limit: int) -> list[AlertRecord]:
        return await due(self.conn, now, limit)

    async def notified(self, alert_id: str, level: int) -> None:
        await notified(self.conn, alert_id, level)

    async def owed_for_event(self, event_id: str) -> AlertRecord | None:
        return await owed_for_event(self.conn, event_id)

    async def owed_escalations(self, limit: int, opened_before: datetime | None = None) -> list[AlertRecord]:
        return await owed_escalations(self.conn, limit, opened_before)

    async def page(
        self, filters: AlertFilter, page_size: int, page_token: str
    ) -> tuple[list[AlertRecord], str]:
        return await page(self.conn, filters, page_size, page_token)


def _encode_token(seen: datetime, alert_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([seen.isoformat(), alert_id]).encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        seen, alert_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(seen), str(alert_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page.page_token", "is not a token this list gave out") from None
