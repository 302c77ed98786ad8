from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import idempotency
from services.kit.errors import InvalidArgument


async def test_a_retried_command_gets_the_first_response_even_when_racing(orders_engine: AsyncEngine) -> None:
    digest = idempotency.request_hash(b"cancel order 42")
    actions = 0

    async def command(label: bytes) -> bytes:
        nonlocal actions
        async with orders_engine.begin() as conn:
            first = await idempotency.claim(conn, "cancel", "key-1", digest)
            if first is not None:
                return first
            actions += 1
            await asyncio.sleep(0.2)  # the duplicate arrives while this one is still working
            await idempotency.complete(conn, "cancel", "key-1", label)
            return label

    answers = await asyncio.gather(command(b"first"), command(b"second"), command(b"third"))
    assert actions == 1
    assert len(set(answers)) == 1


async def test_a_key_reused_for_another_request_is_refused(orders_engine: AsyncEngine) -> None:
    async with orders_engine.begin() as conn:
        await idempotency.claim(conn, "cancel", "key-2", idempotency.request_hash(b"a"))
        await idempotency.complete(conn, "cancel", "key-2", b"done")
    async with orders_engine.begin() as conn:
        with pytest.raises(InvalidArgument) as refused:
            await idempotency.claim(conn, "cancel", "key-2", idempotency.request_hash(b"b"))
    assert refused.value.field == "idempotency_key"
