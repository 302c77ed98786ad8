"""The one mapping from errors to what a gRPC caller is answered.

Field errors carry google.rpc.BadRequest field violations in the status details (the message stays
`field: problem`, naming the first violation); a database that cannot be reached is UNAVAILABLE with
a `retry-after` trailer, never INTERNAL; anything that is not a `DomainError` is INTERNAL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.kit.db_errors import is_connection_failure
from services.kit.errors import DomainError, InvalidArgument, Unavailable

_log = logging.getLogger(__name__)
DETAILS_KEY = "grpc-status-details-bin"
RETRY_AFTER_SECONDS = 1
DATABASE_UNAVAILABLE = "database unavailable; retry"


@dataclass(frozen=True)
class Status:
    """What a failed call answers: code, message and the trailers that go with them."""

    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str | bytes], ...] = ()


def grpc_code(error: DomainError) -> grpc.StatusCode:
    return grpc.StatusCode[error.code.value]


def status_of(error: BaseException) -> Status:
    if isinstance(error, InvalidArgument):
        return Status(
            grpc_code(error), error.message, ((DETAILS_KEY, bad_request(error).SerializeToString()),)
        )
    if isinstance(error, Unavailable):
        return Status(grpc_code(error), error.message, _retry_after())
    if isinstance(error, DomainError):
        return Status(grpc_code(error), error.message)
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        # every pooled connection is busy: the caller may retry (clients retry UNAVAILABLE)
        return Status(grpc.StatusCode.UNAVAILABLE, "busy, retry", _retry_after())
    if is_connection_failure(error):
        return Status(grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE, _retry_after())
    if isinstance(error, NotImplementedError):  # the generated servicer's answer for a method not built
        return Status(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
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


def _retry_after() -> tuple[tuple[str, str], ...]:
    return (("retry-after", str(RETRY_AFTER_SECONDS)),)


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def code_of(number: int) -> grpc.StatusCode:
    """A status code from its number (as an ItemError carries it); UNKNOWN for a number gRPC has not."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def item_error(error: BaseException, message: Any, violation: Any) -> Any:
    """One refused item of a batch call as `message` (oms.common.v1.ItemError, given by the caller's
    mappers): the code (as its number, read back by `code_of`) and message its single call would have
    answered, and the fields at fault (`violation`: FieldViolation). Anything unplanned is logged here,
    as the server does."""
    status = status_of(error)
    if status.code is grpc.StatusCode.INTERNAL:
        _log.error("a batch item failed", exc_info=error)
    violations = error.violations if isinstance(error, InvalidArgument) else ()
    return message(
        code=status.code.value[0],
        message=status.message,
        violations=[violation(field=field, description=problem) for field, problem in violations],
    )
