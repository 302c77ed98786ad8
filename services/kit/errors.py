"""Domain errors every service raises, and their one mapping to gRPC status codes.

Field errors carry google.rpc.BadRequest field violations in the status details (the message stays
`field: problem`, naming the first violation); a database that cannot be reached is UNAVAILABLE with
a `retry-after` trailer, never INTERNAL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"
RETRY_AFTER_SECONDS = 1
DATABASE_UNAVAILABLE = "database unavailable; retry"


class DomainError(Exception):
    """Base of the errors a handler raises on purpose; anything else is a bug (INTERNAL)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """Bad input; names the offending field (e.g. `lines[2].quantity`)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

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


@dataclass(frozen=True)
class Status:
    """What a failed call answers: code, message and the trailers that go with them."""

    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str | bytes], ...] = ()


def status_of(error: BaseException) -> Status:
    if isinstance(error, InvalidArgument):
        return Status(error.code, error.message, ((DETAILS_KEY, bad_request(error).SerializeToString()),))
    if isinstance(error, Unavailable):
        return Status(error.code, error.message, _retry_after())
    if isinstance(error, DomainError):
        return Status(error.code, error.message)
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        # every pooled connection is busy: the caller may retry (clients retry UNAVAILABLE)
        return Status(grpc.StatusCode.UNAVAILABLE, "busy, retry", _retry_after())
    if is_connection_failure(error):
        return Status(grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE, _retry_after())
    return Status(grpc.StatusCode.INTERNAL, "internal error")


def to_status(error: BaseException) -> tuple[grpc.StatusCode, str]:
    status = status_of(error)
    return status.code, status.message


def bad_request(error: InvalidArgument) -> status_pb2.Status:
    """The standard google.rpc.Status with one BadRequest detail: what grpcio-status clients read."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=problem)
                for field, problem in error.violations
            ]
        )
    )
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error.message, details=[detail])


def in_field_order(violations: Sequence[tuple[str, str]], message: Any) -> list[tuple[str, str]]:
    """Violations sorted as the fields of `message` (a message descriptor) are declared, list items by
    index, so the first one named is the first one a reader of the request meets."""
    position = {field.name: index for index, field in enumerate(message.fields)}

    def key(violation: tuple[str, str]) -> tuple[int, int]:
        match = _PATH.match(violation[0])
        name, item = (match.group(1), match.group(2)) if match else (violation[0], None)
        return position.get(name, len(position)), int(item) if item else -1

    return sorted(violations, key=key)


_PATH = re.compile(r"^([a-z_0-9]+)(?:\[(\d+)\])?")


def field_violations(details: bytes) -> list[tuple[str, str]]:
    """The (field, description) pairs in a `grpc-status-details-bin` trailer."""
    status = status_pb2.Status.FromString(details)
    found: list[tuple[str, str]] = []
    for detail in status.details:
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            found += [(v.field, v.description) for v in request.field_violations]
    return found


# what asyncpg raises when the server is gone, restarting or refusing connections; a statement that
# failed on a live connection (a constraint, a cancelled query) is not among them
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect timeout) is one too
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def is_connection_failure(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection: retrying later can succeed."""
    for cause in _causes(error):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, (sqlalchemy.exc.OperationalError, *_CONNECTION_ERRORS)):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in str(cause):
            return True
    return False


def database_error(error: BaseException) -> str | None:
    """What a log may say of a database error: its class and SQLSTATE. None when `error` is not one.

    A DBAPIError's text carries the statement and its parameters, and Postgres' own detail quotes the
    offending values (`Key (phone)=(…) already exists`): personal data, which logs never hold."""
    for cause in _causes(error):
        if isinstance(cause, asyncpg.PostgresError):
            return f"{type(cause).__name__} (SQLSTATE {cause.sqlstate})"
    for cause in _causes(error):
        if isinstance(cause, sqlalchemy.exc.SQLAlchemyError | asyncpg.InterfaceError):
            return type(cause).__name__
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what SQLAlchemy wrapped (`orig`) and what it was raised from, once each."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _retry_after() -> tuple[tuple[str, str], ...]:
    return (("retry-after", str(RETRY_AFTER_SECONDS)),)
