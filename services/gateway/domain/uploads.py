"""Chunked uploads' rules: what an upload may declare, what a chunk must be, when it may be assembled,
and which method its payload is handed to (DOMAIN.md §8).

Life of an upload: open → verified (assembled and checked, handed to the target) → complete (the target's
result stored), or open → failed (checksum mismatch; nothing is handed over). An open upload, or a
verified one nobody is completing, can be aborted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from services.gateway.domain.policy import ORDERS, allowed, rule_for


class UploadProblem(StrEnum):
    """What kind of refusal an `UploadError` is."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"


class UploadError(Exception):
    def __init__(self, field: str, problem: str, code: UploadProblem) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.code = code


class UploadStatus(StrEnum):
    OPEN = "open"
    VERIFIED = "verified"
    COMPLETE = "complete"
    FAILED = "failed"


class Target(StrEnum):
    ORDERS_BATCH = "orders.batch"
    ORDER = "orders.one"
    PAYMENT_STATEMENT = "payments.statement"


UNKNOWN_TARGET = (
    "must be UPLOAD_TARGET_ORDERS_BATCH, UPLOAD_TARGET_CHANNEL_ORDER or UPLOAD_TARGET_PAYMENT_STATEMENT"
)
# the method a completed upload is handed to: the uploader must be allowed to call it
TARGET_METHODS = {
    Target.ORDERS_BATCH: f"{ORDERS}/IngestOrders",
    Target.ORDER: f"{ORDERS}/IngestOrders",
    Target.PAYMENT_STATEMENT: f"{ORDERS}/ImportStatement",
}


@dataclass(frozen=True)
class BeginUpload:
    # None: not a target the gateway hands uploads to
    target: Target | None
    total_bytes: int
    sha256: str
    chunk_bytes: int
    # the caller's own id makes a retried begin idempotent; None: the store picks one
    upload_id: str | None = None


@dataclass(frozen=True)
class UploadState:
    upload_id: str
    owner: str
    target: str
    total_bytes: int
    sha256: str
    chunk_bytes: int
    total_chunks: int
    received: frozenset[int]
    status: str
    created_at: float
    expires_at: float
    result: bytes = b""

    @property
    def missing(self) -> list[int]:
        return [index for index in range(self.total_chunks) if index not in self.received]


@dataclass(frozen=True)
class Completion:
    """A completed upload and its target's answer (serialised, as first given: a repeat returns it)."""

    state: UploadState
    result: bytes


SHA256 = re.compile(r"[0-9a-f]{64}")
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def may_hand_over(target: str, roles: frozenset[str]) -> bool:
    """An upload carries no rights its uploader lacks: the uploader must be allowed to call the
    target's method itself (the policy's rule for it)."""
    rule = rule_for(TARGET_METHODS[Target(target)])
    return rule is not None and allowed(rule, roles)


def target_method_name(target: str) -> str:
    return TARGET_METHODS[Target(target)].rpartition("/")[2]


@dataclass(frozen=True)
class UploadLimits:
    max_total_bytes: int = 64 << 20
    max_chunk_bytes: int = 4 << 20
    # every chunk is a Redis key with ~100 bytes of overhead; tiny chunks would multiply that
    max_chunks: int = 4096

    def check(
        self, target: str, total_bytes: int, sha256: str, chunk_bytes: int, upload_id: str | None
    ) -> None:
        if not target:
            raise UploadError("target", "is required", UploadProblem.INVALID)
        if not 1 <= total_bytes <= self.max_total_bytes:
            if total_bytes < 1:
                raise UploadError("total_bytes", "must be at least 1", UploadProblem.INVALID)
            raise UploadError(
                "total_bytes",
                f"exceeds the limit of {self.max_total_bytes} bytes",
                UploadProblem.RESOURCE_EXHAUSTED,
            )
        if not SHA256.fullmatch(sha256):
            raise UploadError("sha256", "must be 64 hexadecimal digits", UploadProblem.INVALID)
        if not 1 <= chunk_bytes <= self.max_chunk_bytes:
            raise UploadError(
                "chunk_bytes", f"must be between 1 and {self.max_chunk_bytes}", UploadProblem.INVALID
            )
        if math.ceil(total_bytes / chunk_bytes) > self.max_chunks:
            raise UploadError(
                "chunk_bytes",
                f"too small: an upload has at most {self.max_chunks} chunks",
                UploadProblem.INVALID,
            )
        if upload_id is not None and not UPLOAD_ID.fullmatch(upload_id):
            raise UploadError("upload_id", "must be 1-64 letters, digits, '_' or '-'", UploadProblem.INVALID)


def chunk_size(state: UploadState, index: int) -> int:
    """Every chunk is `chunk_bytes` long but the last, which holds the rest."""
    if index < state.total_chunks - 1:
        return state.chunk_bytes
    return state.total_bytes - (state.total_chunks - 1) * state.chunk_bytes


def check_chunk(state: UploadState, index: int, size: int, now: float) -> None:
    if now >= state.expires_at:
        raise not_found()  # the store has not dropped it yet, but its time is up
    if not 0 <= index < state.total_chunks:
        raise UploadError("index", f"must be between 0 and {state.total_chunks - 1}", UploadProblem.INVALID)
    expected = chunk_size(state, index)
    if size != expected:
        raise UploadError(
            "data", f"chunk {index} must be {expected} bytes, not {size}", UploadProblem.INVALID
        )


def check_assemblable(state: UploadState) -> None:
    if state.status not in (UploadStatus.OPEN, UploadStatus.VERIFIED):
        raise UploadError("upload_id", f"upload is already {state.status}", UploadProblem.FAILED_PRECONDITION)
    if state.missing:
        raise UploadError(
            "upload_id",
            f"{len(state.missing)} of {state.total_chunks} chunks are missing",
            UploadProblem.FAILED_PRECONDITION,
        )


def not_found() -> UploadError:
    return UploadError("upload_id", "no such upload", UploadProblem.NOT_FOUND)
