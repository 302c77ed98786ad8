from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import idempotency
from services.kit.errors import InvalidArgument
from services.kit.identity import Principal

OWNER = idempotency.owner_of(Principal("clerk-1", "user", frozenset({"warehouse"})))


async def test_a_retried_command_gets_the_first_response_even_when_racing(orders_engine: AsyncEngine) -> None:
    digest = idempotency.request_hash(b"cancel order 42")
    actions = 0

    async def command(label: bytes) -> bytes:
        nonlocal actions
        async with orders_engine.begin() as conn:
            first = await idempotency.claim(conn, "cancel", "key-1", digest, OWNER)
            if first is not None:
                return first
            actions += 1
            await asyncio.sleep(0.2)  # the duplicate arrives while this one is still working
            await idempotency.complete(conn, "cancel", "key-1", label, OWNER)
            return label

    answers = await asyncio.gather(command(b"first"), command(b"second"), command(b"third"))
    assert actions == 1
    assert len(set(answers)) == 1


async def test_a_key_reused_for_another_request_is_refused(orders_engine: AsyncEngine) -> None:
    async with orders_engine.begin() as conn:
        await idempotency.claim(conn, "cancel", "key-2", idempotency.request_hash(b"a"), OWNER)
        await idempotency.complete(conn, "cancel", "key-2", b"done", OWNER)
    async with orders_engine.begin() as conn:
        with pytest.raises(InvalidArgument) as refused:
            await idempotency.claim(conn, "cancel", "key-2", idempotency.request_hash(b"b"), OWNER)
    assert refused.value.field == "idempotency_key"


async def test_a_key_is_its_callers_another_caller_neither_reads_the_answer_nor_learns_it_was_used(
    orders_engine: AsyncEngine,
) -> None:
    other = idempotency.owner_of(Principal("clerk-2", "user", frozenset({"warehouse"})))
    async with orders_engine.begin() as conn:
        assert await idempotency.claim(conn, "cancel", "key-3", idempotency.request_hash(b"a"), OWNER) is None
        await idempotency.complete(conn, "cancel", "key-3", b"first", OWNER)
    async with orders_engine.begin() as conn:
        # the same request: its own to act on, not the first caller's answer
        assert await idempotency.claim(conn, "cancel", "key-3", idempotency.request_hash(b"a"), other) is None
        assert (
            await idempotency.claim(conn, "cancel", "key-3", idempotency.request_hash(b"a"), OWNER)
            == b"first"
        )
    async with orders_engine.begin() as conn:
        # another request: not "was already used", which would tell that someone used the key
        third = idempotency.owner_of(Principal("clerk-3", "user", frozenset({"warehouse"})))
        assert await idempotency.claim(conn, "cancel", "key-3", idempotency.request_hash(b"b"), third) is None


def test_the_owner_names_who_vouched_what_kind_of_caller_and_who() -> None:
    user = Principal("orders", "user", frozenset({"warehouse"}))
    assert idempotency.owner_of(user) != idempotency.owner_of(Principal.of_service("orders"))
