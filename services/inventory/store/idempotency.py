"""Idempotency keys of stock updates, claimed in the update's own transaction (services.kit.idempotency)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit import idempotency


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(self, scope: str, key: str, digest: str) -> bytes | None:
        """None: this call owns the key and must act, then `complete`. Bytes: the first call's response."""
        return await idempotency.claim(self._conn, scope, key, digest)

    async def complete(self, scope: str, key: str, response: bytes) -> None:
        await idempotency.complete(self._conn, scope, key, response)
