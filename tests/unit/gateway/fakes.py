"""In-memory stand-ins for the ports the gateway's use cases take (handlers/ports.py)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.gateway.domain.audit import AuditRecord
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.principal import Caller, Principal
from services.gateway.domain.uploads import (
    UploadError,
    UploadLimits,
    UploadProblem,
    UploadState,
    UploadStatus,
    check_assemblable,
    check_chunk,
    not_found,
)
from services.gateway.domain.webhooks import Forwarded
from tests.unit.fake_uow import SnapshotUnitOfWork

PENDING = b""


def caller(subject: str, *roles: str, channel: str = "", kind: str = "user") -> Caller:
    return Caller(Principal(subject, kind, frozenset(roles), channel=channel), "192.0.2.7", "req-1")


@dataclass
class FakeAudit:
    """The gate as the use cases see it: audit records and counted failed attempts, kept in lists."""

    records: list[tuple[str, str, str, list[str], str]] = field(default_factory=list)
    attempts: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def audit(
        self, caller: Caller, method: str, result: str, targets: list[str], detail: str = ""
    ) -> None:
        self.records.append((caller.principal.subject, method, result, targets, detail))

    def failed_attempt(self, caller: Caller, method: str, result: str, reason: str) -> None:
        self.attempts.append((caller.principal.subject, method, result, reason))


class FakeReceipts:
    def __init__(self, rows: dict[tuple[str, str, str], tuple[bytes, datetime]]) -> None:
        self.rows = rows

    async def claim(self, kind: str, sender: str, body_sha256: str, now: datetime) -> bool:
        key = (kind, sender, body_sha256)
        if key in self.rows:
            return False
        self.rows[key] = (PENDING, now)
        return True

    async def take_over(
        self, kind: str, sender: str, body_sha256: str, now: datetime, claimed_before: datetime
    ) -> bool:
        key = (kind, sender, body_sha256)
        row = self.rows.get(key)
        if row is None or row[0] != PENDING or row[1] >= claimed_before:
            return False
        self.rows[key] = (PENDING, now)
        return True

    async def first(self, kind: str, sender: str, body_sha256: str) -> bytes | None:
        row = self.rows.get((kind, sender, body_sha256))
        return None if row is None else row[0]

    async def answer(self, kind: str, sender: str, body_sha256: str, response: bytes) -> None:
        key = (kind, sender, body_sha256)
        self.rows[key] = (response, self.rows[key][1])

    async def release(self, kind: str, sender: str, body_sha256: str) -> None:
        key = (kind, sender, body_sha256)
        if key in self.rows and self.rows[key][0] == PENDING:
            del self.rows[key]


class FakeAuditRecords:
    def __init__(self, rows: list[AuditRecord]) -> None:
        self.rows = rows

    async def add(self, record: AuditRecord) -> None:
        self.rows.append(record)

    async def add_many(self, records: Sequence[AuditRecord]) -> None:
        self.rows.extend(records)

    async def page(
        self, principal: str, method: str, target_id: str, trace_id: str, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        return sorted(self.rows, key=lambda r: r.at, reverse=True)[: page_size or 50], ""

    async def purge(self, now: datetime, retention: timedelta) -> int:
        kept = [row for row in self.rows if row.at >= now - retention]
        purged, self.rows[:] = len(self.rows) - len(kept), kept
        return purged


class FakeUnitOfWork(SnapshotUnitOfWork["FakeStore"]):
    def bind(self, state: FakeStore) -> None:
        self.receipts = FakeReceipts(state.receipts)
        self.audit = FakeAuditRecords(state.audit)


@dataclass
class FakeStore:
    receipts: dict[tuple[str, str, str], tuple[bytes, datetime]] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    published: list[object] = field(default_factory=list)

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)


class FakeUploads:
    """The upload store's contract in memory, with the domain's own rules."""

    def __init__(self, ttl_seconds: float = 3600) -> None:
        self.ttl = ttl_seconds
        self.limits = UploadLimits()
        self.uploads: dict[tuple[str, str], UploadState] = {}
        self.chunks: dict[tuple[str, str, int], bytes] = {}
        self.calls: list[str] = []

    async def begin(
        self,
        owner: str,
        target: str,
        total_bytes: int,
        sha256: str,
        chunk_bytes: int,
        now: float,
        upload_id: str | None = None,
    ) -> UploadState:
        self.calls.append("begin")
        self.limits.check(target, total_bytes, sha256, chunk_bytes, upload_id)
        upload_id = upload_id or f"up-{len(self.uploads) + 1}"
        existing = self.uploads.get((owner, upload_id))
        if existing is not None:
            return existing
        state = UploadState(
            upload_id=upload_id,
            owner=owner,
            target=target,
            total_bytes=total_bytes,
            sha256=sha256,
            chunk_bytes=chunk_bytes,
            total_chunks=math.ceil(total_bytes / chunk_bytes),
            received=frozenset(),
            status=UploadStatus.OPEN,
            created_at=now,
            expires_at=now + self.ttl,
        )
        self.uploads[(owner, upload_id)] = state
        return state

    async def status(self, owner: str, upload_id: str) -> UploadState:
        state = self.uploads.get((owner, upload_id))
        if state is None:
            raise not_found()
        return state

    async def put_chunk(self, owner: str, upload_id: str, index: int, data: bytes, now: float) -> UploadState:
        state = await self.status(owner, upload_id)
        check_chunk(state, index, len(data), now)
        self.chunks[(owner, upload_id, index)] = data
        state = replace(state, received=state.received | {index})
        self.uploads[(owner, upload_id)] = state
        return state

    async def assemble(self, owner: str, upload_id: str) -> bytes:
        state = await self.status(owner, upload_id)
        check_assemblable(state)
        payload = b"".join(self.chunks[(owner, upload_id, i)] for i in range(state.total_chunks))
        if hashlib.sha256(payload).hexdigest() != state.sha256:
            self.uploads[(owner, upload_id)] = replace(state, status=UploadStatus.FAILED)
            raise UploadError("sha256", "checksum mismatch", UploadProblem.FAILED_PRECONDITION)
        self.uploads[(owner, upload_id)] = replace(state, status=UploadStatus.VERIFIED)
        return payload

    async def finish(self, owner: str, upload_id: str, result: bytes) -> UploadState:
        state = await self.status(owner, upload_id)
        if state.status != UploadStatus.COMPLETE:
            state = replace(state, status=UploadStatus.COMPLETE, result=result)
            self.uploads[(owner, upload_id)] = state
        return state

    async def abort(self, owner: str, upload_id: str) -> None:
        await self.status(owner, upload_id)
        del self.uploads[(owner, upload_id)]


@dataclass
class FakeOrders:
    """Orders as the use cases call it: it records what it was handed and answers as told."""

    handed: list[tuple[str, str, bytes]] = field(default_factory=list)
    forwarded: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    answer: bytes = b"\x12\x02\x08\x01"
    failure: UpstreamFailure | None = None
    error: Exception | None = None
    visible: set[str] = field(default_factory=set)

    def _fail(self) -> None:
        if self.error is not None:
            raise self.error
        if self.failure is not None:
            raise self.failure

    async def sees(self, caller: Caller, order_id: str) -> bool:
        self._fail()
        return order_id in self.visible

    async def hand_over(self, caller: Caller, target: str, payload: bytes) -> bytes:
        self.handed.append((caller.principal.subject, target, payload))
        self._fail()
        return self.answer

    async def _forward(self, kind: str, caller: Caller, sender: str, body: bytes) -> Forwarded:
        self.forwarded.append((kind, caller.principal.subject, sender, body))
        self._fail()
        return Forwarded(f"{kind}-ref-{len(self.forwarded)}", ["o-1"])

    async def report_payment(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        return await self._forward("payment", caller, sender, body)

    async def report_carrier(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        return await self._forward("carrier", caller, sender, body)

    async def ingest_channel_order(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        return await self._forward("channel", caller, sender, body)

    async def reveal(self, caller: Caller, order_id: str) -> Any:
        self._fail()
        return {"order_id": order_id}
