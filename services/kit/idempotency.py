"""Idempotency keys: a retried command returns the first result instead of acting twice.

`claim` inserts the key inside the command's own transaction, so a concurrent duplicate waits on
the unique index and then reads the committed response.

A key is chosen by the client, so it is its caller's: stored under the caller (`owner_of`), another
caller's use of the same key is a key of its own. It never gets the first caller's answer, nor a
refusal that would tell it the key was taken.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.errors import InvalidArgument
from services.kit.identity import Principal
from services.kit.schema import idempotency_table


def request_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def owner_of(principal: Principal) -> str:
    """Whose keys a caller's are: who vouched for it, what kind of caller it is, and its subject."""
    return f"{principal.issuer}/{principal.actor_type}/{principal.subject}"


def _scope(scope: str, owner: str) -> str:
    # scopes are the commands' own names and never hold "@": the owner is everything after the first
    return f"{scope}@{owner}"


async def claim(conn: AsyncConnection, scope: str, key: str, digest: str, owner: str) -> bytes | None:
    """None: this call owns the key and must act, then `complete`. Bytes: the first call's response."""
    owned = _scope(scope, owner)
    inserted = await conn.execute(
        insert(idempotency_table)
        .values(scope=owned, key=key, request_hash=digest)
        .on_conflict_do_nothing()
        .returning(idempotency_table.c.key)
    )
    if inserted.first() is not None:
        return None
    row = (
        await conn.execute(
            select(idempotency_table.c.request_hash, idempotency_table.c.response).where(
                idempotency_table.c.scope == owned, idempotency_table.c.key == key
            )
        )
    ).one()
    if row.request_hash != digest:
        raise InvalidArgument("idempotency_key", "was already used for a different request")
    return bytes(row.response or b"")


async def complete(conn: AsyncConnection, scope: str, key: str, response: bytes, owner: str) -> None:
    await conn.execute(
        update(idempotency_table)
        .where(idempotency_table.c.scope == _scope(scope, owner), idempotency_table.c.key == key)
        .values(response=response)
    )
