from __future__ import annotations

import asyncpg
import grpc
import sqlalchemy.exc

from oms.orders.v1 import orders_pb2
from services.kit.db_errors import is_connection_failure
from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.status import DETAILS_KEY, field_violations, in_field_order, status_of, to_status


def _wrapped(cause: BaseException, invalidated: bool = False) -> sqlalchemy.exc.DBAPIError:
    """What SQLAlchemy raises around a driver error: the driver's error is its `orig` and its cause."""
    try:
        raise sqlalchemy.exc.DBAPIError("SELECT 1", {}, cause, connection_invalidated=invalidated) from cause
    except sqlalchemy.exc.DBAPIError as error:
        return error


def test_a_database_that_cannot_be_reached_is_unavailable_with_retry_after_never_internal() -> None:
    outages: list[BaseException] = [
        ConnectionRefusedError(111, "Connect call failed"),
        OSError("Network is unreachable"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        _wrapped(Exception("closed"), invalidated=True),
        _wrapped(asyncpg.CannotConnectNowError("the database system is shutting down")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    ]
    for error in outages:
        status = status_of(error)
        assert status.code == grpc.StatusCode.UNAVAILABLE, error
        assert dict(status.trailers)["retry-after"] == "1", error
    assert to_status(outages[0]) == (grpc.StatusCode.UNAVAILABLE, "database unavailable; retry")


def test_a_statement_that_failed_on_a_live_connection_is_still_internal() -> None:
    for error in (
        _wrapped(asyncpg.UniqueViolationError("duplicate key")),
        _wrapped(asyncpg.InterfaceError("cannot perform operation: another operation is in progress")),
        KeyError("secret"),
    ):
        assert to_status(error) == (grpc.StatusCode.INTERNAL, "internal error")
        assert not is_connection_failure(error)


def test_field_errors_carry_bad_request_violations_and_keep_their_message() -> None:
    error = InvalidArgument.of([("channel", "is required"), ("lines", "an order needs at least one line")])
    status = status_of(error)
    assert (status.code, status.message) == (grpc.StatusCode.INVALID_ARGUMENT, "channel: is required")
    details = dict(status.trailers)[DETAILS_KEY]
    assert isinstance(details, bytes)
    assert field_violations(details) == [
        ("channel", "is required"),
        ("lines", "an order needs at least one line"),
    ]
    nested = InvalidArgument("sku", "is required").within("items[2].order")
    assert (nested.field, nested.message) == ("items[2].order.sku", "items[2].order.sku: is required")


def test_other_domain_errors_keep_their_code_and_add_no_trailers() -> None:
    status = status_of(FailedPrecondition("order is frozen"))
    assert (status.code, status.message, status.trailers) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "order is frozen",
        (),
    )


def test_violations_are_put_in_the_order_of_the_request_fields_and_list_items() -> None:
    found = [
        ("shipping_address", "is required"),
        ("lines[10].sku", "bad"),
        ("lines[2].quantity", "bad"),
        ("lines", "too many"),
        ("channel", "unknown value 42"),
    ]
    assert [field for field, _ in in_field_order(found, orders_pb2.IngestOrderRequest.DESCRIPTOR)] == [
        "channel",
        "lines",
        "lines[2].quantity",
        "lines[10].sku",
        "shipping_address",
    ]
