"""Idempotency keys of stock updates, claimed in the update's own transaction (services.kit.idempotency)."""

from __future__ import annotations

from services.inventory.store.connection import Connect
from services.kit import idempotency


class IdempotencyRepository:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def claim(self, scope: str, key: str, digest: str, owner: str) -> bytes | None:
        """None: this call owns the key and must act, then `complete`. Bytes: the first call's response
        (of the same caller `owner`: keys are chosen by clients, so they are their caller's)."""
        conn = await self._connect()
        return await idempotency.claim(conn, scope, key, digest, owner)

    async def complete(self, scope: str, key: str, response: bytes, owner: str) -> None:
        conn = await self._connect()
        await idempotency.complete(conn, scope, key, response, owner)
