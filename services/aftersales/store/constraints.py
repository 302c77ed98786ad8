"""Which constraint a statement broke, read from the asyncpg error under SQLAlchemy's wrapper."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc


def violated(error: sqlalchemy.exc.IntegrityError) -> str:
    """The name of the constraint (or unique index) `error` broke; "" when it does not say."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, asyncpg.IntegrityConstraintViolationError):
            return str(getattr(current, "constraint_name", "") or "")
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return ""
