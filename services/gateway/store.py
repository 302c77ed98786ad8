"""The gateway's tables: the audit log and webhook receipts (SQLAlchemy Core on asyncpg)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.errors import InvalidArgument

metadata = MetaData()
TZ = DateTime(timezone=True)
MIN_RETENTION = timedelta(days=180)

audit_table = Table(
    "audit_log",
    metadata,
    Column("audit_id", String(36), primary_key=True),
    Column("at", TZ, nullable=False),
    Column("principal", String(128), nullable=False),
    Column("principal_kind", String(16), nullable=False),
    Column("roles", ARRAY(String(32)), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("method", String(128), nullable=False),
    Column("target_ids", ARRAY(String(128)), nullable=False),
    Column("result", String(32), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    # more than 1 for a record that counts failed attempts of one window (services/gateway/attempts.py)
    Column("attempts", Integer, nullable=False),
)

receipts_table = Table(
    "webhook_receipts",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("sender", String(32), primary_key=True),
    Column("body_sha256", String(64), primary_key=True),
    Column("response", LargeBinary, nullable=False),
    Column("received_at", TZ, nullable=False),
)


@dataclass(frozen=True)
class AuditRecord:
    audit_id: str
    at: datetime
    principal: str
    principal_kind: str
    roles: tuple[str, ...]
    source_ip: str
    method: str
    target_ids: tuple[str, ...]
    result: str
    trace_id: str
    detail: str
    attempts: int = 1


async def add_audit(conn: AsyncConnection, record: AuditRecord) -> None:
    await conn.execute(
        audit_table.insert().values(
            audit_id=record.audit_id,
            at=record.at,
            principal=record.principal[:128],
            principal_kind=record.principal_kind[:16],
            roles=[role[:32] for role in record.roles],
            source_ip=record.source_ip[:64],
            method=record.method[:128],
            target_ids=[target[:128] for target in record.target_ids][:20],
            result=record.result[:32],
            trace_id=record.trace_id[:32],
            detail=record.detail[:2000],
            attempts=record.attempts,
        )
    )


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
    cutoff = now - max(retention, MIN_RETENTION)
    result = await conn.execute(delete(audit_table).where(audit_table.c.at < cutoff))
    return int(result.rowcount or 0)


# A receipt is claimed (response still PENDING) by the first delivery before it is handled, in one
# INSERT, so concurrent deliveries of the same body cannot all believe they are the first.
PENDING = b""


async def claim_receipt(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, now: datetime
) -> bool:
    """True for the one delivery whose INSERT created the receipt; every other one sees it exists."""
    created = await conn.execute(
        insert(receipts_table)
        .values(kind=kind, sender=sender, body_sha256=body_sha256, response=PENDING, received_at=now)
        .on_conflict_do_nothing()
        .returning(receipts_table.c.kind)
    )
    return created.first() is not None


async def take_over_claim(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, now: datetime, claimed_before: datetime
) -> bool:
    """A claim still unanswered since before `claimed_before` (its delivery died) passes to this one."""
    taken = await conn.execute(
        update(receipts_table)
        .where(
            *_receipt_key(kind, sender, body_sha256),
            receipts_table.c.response == PENDING,
            receipts_table.c.received_at < claimed_before,
        )
        .values(received_at=now)
        .returning(receipts_table.c.kind)
    )
    return taken.first() is not None


async def first_receipt(conn: AsyncConnection, kind: str, sender: str, body_sha256: str) -> bytes | None:
    """The first delivery's answer, PENDING while it is being handled, None when nobody holds a claim."""
    row = (
        await conn.execute(select(receipts_table.c.response).where(*_receipt_key(kind, sender, body_sha256)))
    ).first()
    return None if row is None else bytes(row.response)


async def answer_receipt(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, response: bytes
) -> None:
    await conn.execute(
        update(receipts_table).where(*_receipt_key(kind, sender, body_sha256)).values(response=response)
    )


async def release_claim(conn: AsyncConnection, kind: str, sender: str, body_sha256: str) -> None:
    """The claimed delivery failed: the next delivery of the body is handled afresh."""
    await conn.execute(
        delete(receipts_table).where(
            *_receipt_key(kind, sender, body_sha256), receipts_table.c.response == PENDING
        )
    )


def _receipt_key(kind: str, sender: str, body_sha256: str) -> tuple[Any, ...]:
    return (
        receipts_table.c.kind == kind,
        receipts_table.c.sender == sender,
        receipts_table.c.body_sha256 == body_sha256,
    )


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        audit_id=row["audit_id"],
        at=row["at"],
        principal=row["principal"],
        principal_kind=row["principal_kind"],
        roles=tuple(row["roles"]),
        source_ip=row["source_ip"],
        method=row["method"],
        target_ids=tuple(row["target_ids"]),
        result=row["result"],
        trace_id=row["trace_id"],
        detail=row["detail"],
        attempts=row["attempts"],
    )


def _encode_token(at: datetime, audit_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), audit_id]).encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        at, audit_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(audit_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page.page_token", "is not a token this list gave out") from None
