from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from omsctl.stack import Infra
from tests.conftest import random_ref


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[Redis]:
    client = Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis: Redis) -> AsyncIterator[str]:
    """A prefix no other test uses; its keys are removed afterwards."""
    prefix = random_ref("t")
    yield prefix
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        await redis.delete(key)
