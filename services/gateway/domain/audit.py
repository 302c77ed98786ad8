"""The audit log's records: who called what, with which result, touching which ids (kept ≥ 180 days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.gateway.domain.attempts import AttemptKey
from services.gateway.domain.principal import Caller

MIN_RETENTION = timedelta(days=180)


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
    # more than 1 for a record that counts the failed attempts of one window
    attempts: int = 1


def call_record(
    audit_id: str,
    at: datetime,
    caller: Caller,
    method: str,
    result: str,
    targets: list[str],
    trace_id: str,
    detail: str = "",
) -> AuditRecord:
    """One call's record: its targets once each, in the order first named, empty ids left out."""
    principal = caller.principal
    return AuditRecord(
        audit_id=audit_id,
        at=at,
        principal=principal.subject or "anonymous",
        principal_kind=principal.kind,
        roles=tuple(sorted(principal.roles)),
        source_ip=caller.source_ip,
        method=method.lstrip("/"),
        target_ids=tuple(dict.fromkeys(target for target in targets if target)),
        result=result,
        trace_id=trace_id,
        detail=detail,
    )


def attempts_record(audit_id: str, key: AttemptKey, count: int, window_seconds: float) -> AuditRecord:
    """The record of one closed window's failed attempts under one key, with their count."""
    start = datetime.fromtimestamp(key.window_start, UTC)
    return AuditRecord(
        audit_id=audit_id,
        at=start,
        principal=key.principal or "anonymous",
        principal_kind=key.principal_kind,
        roles=(),
        source_ip=key.address,
        method=key.method,
        target_ids=(),
        result=key.result,
        trace_id="",
        detail=(
            f"{count} failed attempt{'s' if count != 1 else ''} ({key.reason}) "
            f"in the {window_seconds:g} s from {start:%Y-%m-%dT%H:%M:%S}Z"
        ),
        attempts=count,
    )


def purge_cutoff(now: datetime, retention: timedelta) -> datetime:
    """Records older than this may go: never younger than 180 days, whatever the setting says."""
    return now - max(retention, MIN_RETENTION)
