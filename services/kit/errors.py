"""Domain errors every service raises, and their one mapping to gRPC status codes."""

from __future__ import annotations

import grpc
import sqlalchemy.exc


class DomainError(Exception):
    """Base of the errors a handler raises on purpose; anything else is a bug (INTERNAL)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """Bad input; names the offending field (e.g. `lines[2].quantity`)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(DomainError):
    """A dependency is down; callers may retry."""

    code = grpc.StatusCode.UNAVAILABLE


def to_status(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, DomainError):
        return error.code, error.message
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        # every pooled connection is busy: the caller may retry (clients retry UNAVAILABLE)
        return grpc.StatusCode.UNAVAILABLE, "busy, retry"
    return grpc.StatusCode.INTERNAL, "internal error"
