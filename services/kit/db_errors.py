"""Telling database outages from bugs, and what a log may say of a database error."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import sqlalchemy.exc

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
