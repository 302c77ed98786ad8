"""Webhook receipts in the gateway's Postgres: one claim per body, however many deliveries race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.store.receipts import (
    PENDING,
    answer_receipt,
    claim_receipt,
    first_receipt,
    release_claim,
    take_over_claim,
)
from services.kit.db import make_engine


@pytest.fixture
async def engine(gateway_db: str) -> AsyncIterator[AsyncEngine]:
    created = make_engine(gateway_db, pool_size=10)
    yield created
    await created.dispose()


async def claim(engine: AsyncEngine, now: datetime) -> bool:
    async with engine.begin() as conn:
        return await claim_receipt(conn, "payment", "wechat_pay", "d" * 64, now)


async def test_of_ten_concurrent_claims_of_one_body_exactly_one_wins(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)

    won = await asyncio.gather(*(claim(engine, now) for _ in range(10)))

    assert sorted(won) == [False] * 9 + [True]
    async with engine.connect() as conn:
        assert await first_receipt(conn, "payment", "wechat_pay", "d" * 64) == PENDING


async def test_a_released_claim_can_be_taken_again_and_an_answered_one_cannot(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    assert await claim(engine, now)
    async with engine.begin() as conn:
        await release_claim(conn, "payment", "wechat_pay", "d" * 64)
    assert await claim(engine, now)
    async with engine.begin() as conn:
        await answer_receipt(conn, "payment", "wechat_pay", "d" * 64, b"answer")
        await release_claim(conn, "payment", "wechat_pay", "d" * 64)
    async with engine.connect() as conn:
        assert await first_receipt(conn, "payment", "wechat_pay", "d" * 64) == b"answer"


async def test_only_a_stale_unanswered_claim_is_taken_over(engine: AsyncEngine) -> None:
    then = datetime.now(UTC) - timedelta(minutes=5)
    assert await claim(engine, then)
    async with engine.begin() as conn:
        fresh = await take_over_claim(
            conn, "payment", "wechat_pay", "d" * 64, then, then - timedelta(seconds=30)
        )
        stale = await take_over_claim(
            conn,
            "payment",
            "wechat_pay",
            "d" * 64,
            datetime.now(UTC),
            datetime.now(UTC) - timedelta(seconds=30),
        )
    assert (fresh, stale) == (False, True)
