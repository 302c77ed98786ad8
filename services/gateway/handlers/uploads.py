"""Chunked uploads: begin, chunks, status, complete (the verified payload handed to its target as the
uploader), abort, and the one-call stream of them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from services.gateway.domain.attempts import REFUSED_RESULTS, AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import Caller
from services.gateway.domain.uploads import (
    UNKNOWN_TARGET,
    BeginUpload,
    Completion,
    UploadError,
    UploadProblem,
    UploadState,
    UploadStatus,
    may_hand_over,
    target_method_name,
)
from services.gateway.handlers.ports import AuditLog, Orders, UploadStore
from services.kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

T = TypeVar("T")

# what a target's refusal becomes for the uploader: the same code and message
TARGET_ERRORS: dict[str, type[DomainError]] = {
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": FailedPrecondition,
    "ALREADY_EXISTS": AlreadyExists,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAUTHENTICATED": Unauthenticated,
    "UNAVAILABLE": Unavailable,
}


class Uploads:
    def __init__(
        self, store: UploadStore, orders: Orders, attempts: AuditLog, wall: Callable[[], float]
    ) -> None:
        self.store = store
        self.orders = orders
        self.attempts = attempts
        self.wall = wall

    async def begin(self, caller: Caller, command: BeginUpload, method: str) -> UploadState:
        if command.target is None:
            raise InvalidArgument("target", UNKNOWN_TARGET)
        # refused before a byte is stored: an upload carries no rights its uploader lacks
        self._may_hand_over(caller, command.target, method)
        return await _call(
            self.store.begin(
                owner(caller),
                command.target,
                command.total_bytes,
                command.sha256,
                command.chunk_bytes,
                self.wall(),
                command.upload_id,
            )
        )

    async def put_chunk(self, caller: Caller, upload_id: str, index: int, data: bytes) -> UploadState:
        return await _call(self.store.put_chunk(owner(caller), upload_id, index, data, self.wall()))

    async def status(self, caller: Caller, upload_id: str) -> UploadState:
        return await _call(self.store.status(owner(caller), upload_id))

    async def abort(self, caller: Caller, upload_id: str) -> None:
        await _call(self.store.abort(owner(caller), upload_id))

    async def stream(
        self, caller: Caller, parts: AsyncIterator[BeginUpload | bytes], method: str
    ) -> Completion:
        """A header first, then the chunks in order (any the upload already holds are skipped), then
        complete: a retried stream of an upload begun before resumes where it stopped."""
        state: UploadState | None = None
        index = 0
        async for part in parts:
            if isinstance(part, BeginUpload):
                if state is not None:
                    raise InvalidArgument("header", "comes once, first")
                state = await self.begin(caller, part, method)
                index = min(state.missing, default=state.total_chunks)
                continue
            if state is None:
                raise InvalidArgument("header", "must come before the chunks")
            while index < state.total_chunks and index in state.received:
                index += 1
            state = await _call(
                self.store.put_chunk(owner(caller), state.upload_id, index, part, self.wall())
            )
            index += 1
        if state is None:
            raise InvalidArgument("header", "is required")
        return await self.complete(caller, state.upload_id, method)

    async def complete(self, caller: Caller, upload_id: str, method: str) -> Completion:
        """Verify, hand over, keep the target's answer: a repeated complete returns that first answer.
        The target is called as the uploader (the assertion names them, their roles and their scope),
        so its own row scope applies: a channel's key hands over its own channel's orders only."""
        who = owner(caller)
        state = await _call(self.store.status(who, upload_id))
        self._may_hand_over(caller, state.target, method)
        if state.status == UploadStatus.COMPLETE:
            return Completion(state, state.result)
        payload = await _call(self.store.assemble(who, upload_id))
        try:
            result = await self.orders.hand_over(caller, state.target, payload)
        except UpstreamFailure as error:
            if error.code in REFUSED_RESULTS:
                self.attempts.failed_attempt(
                    caller, f"/{GATEWAY}/{method}", error.code, AttemptReason.SERVICE_REFUSED
                )
            raise target_error(error) from None
        finished = await _call(self.store.finish(who, upload_id, result))
        return Completion(finished, result)

    def _may_hand_over(self, caller: Caller, target: str, method: str) -> None:
        if not may_hand_over(target, caller.principal.roles):
            self.attempts.failed_attempt(
                caller, f"/{GATEWAY}/{method}", "PERMISSION_DENIED", AttemptReason.TARGET_NOT_ALLOWED
            )
            raise PermissionDenied(
                f"target: the upload is handed to {target_method_name(target)}, "
                "which this caller may not call"
            )


def owner(caller: Caller) -> str:
    """Uploads are keyed by their uploader: no other principal's are reachable."""
    return caller.principal.subject or "anonymous"


def target_error(error: UpstreamFailure) -> Exception:
    """The target's refusal of a handed-over payload, for the uploader; anything else stays a failure."""
    if error.code == "INVALID_ARGUMENT":
        field, problem = error.first_violation()
        if not problem:
            return InvalidArgument("payload", error.details)
        return InvalidArgument(f"payload.{field}", problem)
    kind = TARGET_ERRORS.get(error.code)
    return error if kind is None else kind(error.details)


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except UploadError as error:
        if error.code == UploadProblem.NOT_FOUND:
            raise NotFound(f"upload not found ({error.problem})") from None
        if error.code == UploadProblem.RESOURCE_EXHAUSTED:
            raise ResourceExhausted(f"{error.field}: {error.problem}") from None
        if error.code == UploadProblem.FAILED_PRECONDITION:
            raise FailedPrecondition(f"{error.field}: {error.problem}") from None
        raise InvalidArgument(error.field, error.problem) from None
