"""Webhook receipts: one per (kind, sender, body), claimed by the first delivery before it is handled.

The claim is one INSERT (response still PENDING), so concurrent deliveries of the same body cannot all
believe they are the first; the first delivery's answer is then kept for every later one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.store.tables import receipts_table

PENDING = b""


async def claim_receipt(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, now: datetime
) -> bool:
    """True for the one delivery whose INSERT created the receipt; every other one sees it exists."""
    created = await conn.execute(
        insert(receipts_table)
        .values(kind=kind, sender=sender, body_sha256=body_sha256, response=PENDING, received_at=now)
        .on_conflict_do_nothing()
        .returning(receipts_table.c.kind)
    )
    return created.first() is not None


async def take_over_claim(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, now: datetime, claimed_before: datetime
) -> bool:
    """A claim still unanswered since before `claimed_before` (its delivery died) passes to this one."""
    taken = await conn.execute(
        update(receipts_table)
        .where(
            *_receipt_key(kind, sender, body_sha256),
            receipts_table.c.response == PENDING,
            receipts_table.c.received_at < claimed_before,
        )
        .values(received_at=now)
        .returning(receipts_table.c.kind)
    )
    return taken.first() is not None


async def first_receipt(conn: AsyncConnection, kind: str, sender: str, body_sha256: str) -> bytes | None:
    """The first delivery's answer, PENDING while it is being handled, None when nobody holds a claim."""
    row = (
        await conn.execute(select(receipts_table.c.response).where(*_receipt_key(kind, sender, body_sha256)))
    ).first()
    return None if row is None else bytes(row.response)


async def answer_receipt(
    conn: AsyncConnection, kind: str, sender: str, body_sha256: str, response: bytes
) -> None:
    await conn.execute(
        update(receipts_table).where(*_receipt_key(kind, sender, body_sha256)).values(response=response)
    )


async def release_claim(conn: AsyncConnection, kind: str, sender: str, body_sha256: str) -> None:
    """The claimed delivery failed: the next delivery of the body is handled afresh."""
    await conn.execute(
        delete(receipts_table).where(
            *_receipt_key(kind, sender, body_sha256), receipts_table.c.response == PENDING
        )
    )


class ReceiptRepository:
    """The receipts of one unit of work's connection (see the functions above)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(self, kind: str, sender: str, body_sha256: str, now: datetime) -> bool:
        return await claim_receipt(self.conn, kind, sender, body_sha256, now)

    async def take_over(
        self, kind: str, sender: str, body_sha256: str, now: datetime, claimed_before: datetime
    ) -> bool:
        return await take_over_claim(self.conn, kind, sender, body_sha256, now, claimed_before)

    async def first(self, kind: str, sender: str, body_sha256: str) -> bytes | None:
        return await first_receipt(self.conn, kind, sender, body_sha256)

    async def answer(self, kind: str, sender: str, body_sha256: str, response: bytes) -> None:
        await answer_receipt(self.conn, kind, sender, body_sha256, response)

    async def release(self, kind: str, sender: str, body_sha256: str) -> None:
        await release_claim(self.conn, kind, sender, body_sha256)


def _receipt_key(kind: str, sender: str, body_sha256: str) -> tuple[Any, ...]:
    return (
        receipts_table.c.kind == kind,
        receipts_table.c.sender == sender,
        receipts_table.c.body_sha256 == body_sha256,
    )
