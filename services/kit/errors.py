"""The errors a use case raises on purpose: plain exceptions, standard library only.

Domain code of every service raises these (the one module of the kit a domain may import: the layer
contracts in pyproject.toml check it). What a caller is answered for each, the gRPC status with its
field violations and trailers, is decided at the edge of the process, in `services.kit.status`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class ErrorCode(StrEnum):
    """What kind of refusal: named like the gRPC codes they are answered with."""

    INTERNAL = "INTERNAL"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"


class DomainError(Exception):
    """Base of the errors a handler raises on purpose; anything else is a bug (INTERNAL)."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """Bad input; names the offending field (e.g. `lines[2].quantity`)."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str, *more: tuple[str, str]) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.violations: tuple[tuple[str, str], ...] = ((field, problem), *more)

    @classmethod
    def of(cls, violations: Sequence[tuple[str, str]]) -> InvalidArgument:
        """One error for several wrong fields, in the order the caller should read them."""
        (field, problem), *more = violations
        return cls(field, problem, *more)

    def within(self, prefix: str) -> InvalidArgument:
        """The same violations for a message nested at `prefix` (e.g. `items[3].order`)."""
        return InvalidArgument.of([(f"{prefix}.{field}", problem) for field, problem in self.violations])


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = ErrorCode.FAILED_PRECONDITION


class AlreadyExists(DomainError):
    code = ErrorCode.ALREADY_EXISTS


class ResourceExhausted(DomainError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class Unauthenticated(DomainError):
    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = ErrorCode.PERMISSION_DENIED


class Unavailable(DomainError):
    """A dependency is down; callers may retry."""

    code = ErrorCode.UNAVAILABLE
