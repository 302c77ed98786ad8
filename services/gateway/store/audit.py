"""The audit log: written before a caller gets its answer, listed newest first, purged after retention."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.domain.audit import AuditRecord, purge_cutoff
from services.gateway.store.tables import audit_table
from services.kit.errors import InvalidArgument


def _row(record: AuditRecord) -> dict[str, Any]:
    return {
        "audit_id": record.audit_id,
        "at": record.at,
        "principal": record.principal[:128],
        "principal_kind": record.principal_kind[:16],
        "roles": [role[:32] for role in record.roles],
        "source_ip": record.source_ip[:64],
        "method": record.method[:128],
        "target_ids": [target[:128] for target in record.target_ids][:20],
        "result": record.result[:32],
        "trace_id": record.trace_id[:32],
        "detail": record.detail[:2000],
        "attempts": record.attempts,
    }


async def add_audit(conn: AsyncConnection, record: AuditRecord) -> None:
    await add_audits(conn, [record])


async def add_audits(conn: AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """One round of the lot (one statement, compiled once, executed for every row)."""
    if records:
        await conn.execute(audit_table.insert(), [_row(record) for record in records])


async def list_audit(
    conn: AsyncConnection,
    principal: str,
    method: str,
    target_id: str,
    trace_id: str,
    page_size: int,
    page_token: str,
) -> tuple[list[AuditRecord], str]:
    if not 0 <= page_size <= 500:
        raise InvalidArgument("page.page_size", "must be between 0 and 500")
    size = page_size or 50
    query = select(audit_table)
    if principal:
        query = query.where(audit_table.c.principal == principal)
    if method:
        query = query.where(audit_table.c.method == method.lstrip("/"))
    if target_id:
        query = query.where(audit_table.c.target_ids.contains([target_id]))
    if trace_id:
        query = query.where(audit_table.c.trace_id == trace_id)
    if page_token:
        at, audit_id = _decode_token(page_token)
        query = query.where(
            (audit_table.c.at < at) | ((audit_table.c.at == at) & (audit_table.c.audit_id < audit_id))
        )
    rows = (
        await conn.execute(
            query.order_by(audit_table.c.at.desc(), audit_table.c.audit_id.desc()).limit(size + 1)
        )
    ).all()
    records = [_record(row._mapping) for row in rows[:size]]
    token = _encode_token(records[-1].at, records[-1].audit_id) if len(rows) > size else ""
    return records, token


async def purge_audit(conn: AsyncConnection, now: datetime, retention: timedelta) -> int:
    """Delete records older than the retention; never younger than 180 days (the table refuses too)."""
    result = await conn.execute(delete(audit_table).where(audit_table.c.at < purge_cutoff(now, retention)))
    return int(result.rowcount or 0)


class AuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, record: AuditRecord) -> None:
        await add_audit(self.conn, record)

    async def add_many(self, records: Sequence[AuditRecord]) -> None:
        await add_audits(self.conn, records)

    async def page(
        self, principal: str, method: str, target_id: str, trace_id: str, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        return await list_audit(self.conn, principal, method, target_id, trace_id, page_size, page_token)

    async def purge(self, now: datetime, retention: timedelta) -> int:
        return await purge_audit(self.conn, now, retention)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(**{**row, "roles": tuple(row["roles"]), "target_ids": tuple(row["target_ids"])})


def _encode_token(at: datetime, audit_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), audit_id]).encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        at, audit_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(audit_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page.page_token", "is not a token this list gave out") from None
