"""What the use cases need from the rest of the gateway, as protocols (the gate, orders, the stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from services.gateway.domain.alert_records import AlertFilter, AlertRecord, Raised
from services.gateway.domain.audit import AuditRecord
from services.gateway.domain.principal import Caller
from services.gateway.domain.tracking_pushes import PushReply
from services.gateway.domain.uploads import UploadState
from services.gateway.domain.users import ConsoleUser
from services.gateway.domain.webhooks import Forwarded
from services.gateway.provider_notifications import RefundNotice


class AuditLog(Protocol):
    """The gate's audit: records written before the caller is answered, failed attempts counted."""

    async def audit(
        self, caller: Caller, method: str, result: str, targets: list[str], detail: str = ""
    ) -> None: ...

    def failed_attempt(self, caller: Caller, method: str, result: str, reason: str) -> None: ...


class AuditRecords(Protocol):
    async def add(self, record: AuditRecord) -> None: ...

    async def add_many(self, records: Sequence[AuditRecord]) -> None: ...

    async def page(
        self, principal: str, method: str, target_id: str, trace_id: str, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]: ...

    async def purge(self, now: datetime, retention: timedelta) -> int: ...


class Receipts(Protocol):
    """One receipt per (kind, sender, body digest); `claim` is true for exactly one delivery."""

    async def claim(self, kind: str, sender: str, body_sha256: str, now: datetime) -> bool: ...

    async def take_over(
        self, kind: str, sender: str, body_sha256: str, now: datetime, claimed_before: datetime
    ) -> bool: ...

    async def first(self, kind: str, sender: str, body_sha256: str) -> bytes | None: ...

    async def answer(self, kind: str, sender: str, body_sha256: str, response: bytes) -> None: ...

    async def release(self, kind: str, sender: str, body_sha256: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: rolled back unless committed."""

    @property
    def audit(self) -> AuditRecords: ...

    @property
    def receipts(self) -> Receipts: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class Orders(Protocol):
    """Orders, called as the caller (its row scope applies); failures raise `UpstreamFailure`."""

    async def sees(self, caller: Caller, order_id: str) -> bool: ...

    async def hand_over(self, caller: Caller, target: str, payload: bytes) -> bytes: ...

    async def report_payment(self, caller: Caller, sender: str, body: bytes) -> Forwarded: ...

    async def report_carrier(self, caller: Caller, sender: str, body: bytes) -> Forwarded: ...

    async def ingest_channel_order(self, caller: Caller, sender: str, body: bytes) -> Forwarded: ...

    # the order as orders answers it, passed through untouched
    async def reveal(self, caller: Caller, order_id: str) -> Any: ...


class Aftersales(Protocol):
    """After-sales, called as the verified provider; failures raise `UpstreamFailure`."""

    async def report_refund(self, caller: Caller, provider: str, notice: RefundNotice) -> None: ...


class Logistics(Protocol):
    """Logistics, called as the verified sender; failures raise `UpstreamFailure`."""

    async def report_tracking(
        self, caller: Caller, carrier: str, content_type: str, body: bytes
    ) -> PushReply: ...


class UploadStore(Protocol):
    async def begin(
        self,
        owner: str,
        target: str,
        total_bytes: int,
        sha256: str,
        chunk_bytes: int,
        now: float,
        upload_id: str | None = None,
    ) -> UploadState: ...

    async def put_chunk(
        self, owner: str, upload_id: str, index: int, data: bytes, now: float
    ) -> UploadState: ...

    async def status(self, owner: str, upload_id: str) -> UploadState: ...

    async def assemble(self, owner: str, upload_id: str) -> bytes: ...

    async def finish(self, owner: str, upload_id: str, result: bytes) -> UploadState: ...

    async def abort(self, owner: str, upload_id: str) -> None: ...


class AlertFeed(Protocol):
    def subscribe(
        self, min_severity: int = 0, replay: bool = True
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]: ...


class SecretChecks(Protocol):
    async def authenticate(self, accounts: Mapping[str, Any], client_id: str, secret: str) -> Any: ...

    async def matches(self, secret: str, stored_hash: str | None) -> bool: ...


class FailureThrottle(Protocol):
    async def blocked_for(self, client_id: str, address: str) -> float: ...

    async def failed(self, client_id: str, address: str) -> float: ...

    async def succeeded(self, client_id: str) -> None: ...


class AlertRecords(Protocol):
    """Alert records (services.gateway.store.alert_records)."""

    async def fold(self, raised: Raised, new: AlertRecord) -> tuple[AlertRecord, bool] | None: ...

    async def locked(self, alert_id: str) -> AlertRecord | None: ...

    async def save(self, record: AlertRecord) -> None: ...

    async def due(self, now: datetime, limit: int) -> list[AlertRecord]: ...

    async def notified(self, alert_id: str, level: int) -> None: ...

    async def owed_for_event(self, event_id: str) -> AlertRecord | None: ...

    async def owed_escalations(
        self, limit: int, opened_before: datetime | None = None
    ) -> list[AlertRecord]: ...

    async def page(
        self, filters: AlertFilter, page_size: int, page_token: str
    ) -> tuple[list[AlertRecord], str]: ...


class AlertUnitOfWork(Protocol):
    """One transaction over the alert records: rolled back unless committed."""

    @property
    def alerts(self) -> AlertRecords: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...


class AlertNotifier(Protocol):
    """Tells an alert record's assignee (through the sinks): when it opens, and at each escalation."""

    async def notify(self, record: AlertRecord, escalated: bool) -> bool:
        """True when every sink delivered it (or had already): only then is the assignee marked told."""
        ...


class Users(Protocol):
    """Console users (services.gateway.store.users)."""

    async def get(self, subject: str) -> ConsoleUser | None: ...

    async def put(self, user: ConsoleUser, now: datetime) -> bool: ...


class UserUnitOfWork(Protocol):
    """One transaction over the console users and the audit log: rolled back unless committed."""

    @property
    def users(self) -> Users: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def commit(self) -> None: ...
