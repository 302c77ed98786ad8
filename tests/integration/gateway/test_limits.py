from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from omsctl.stack import Infra
from services.gateway.config import (
    DEFAULT_LIMITER,
    DEFAULT_REDIS_MAX_CONNECTIONS,
    DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS,
)
from services.gateway.limits import (
    AHEAD_SECONDS,
    Decision,
    Limit,
    LimiterSettings,
    LocalTokenBucket,
    RateLimiter,
    RedisTokenBucket,
    connect_redis,
    tokens_ahead,
)

NOW = 1_700_000_000.0


@pytest.fixture
def bucket(redis: Redis, key_prefix: str) -> RedisTokenBucket:
    return RedisTokenBucket(redis, prefix=key_prefix)


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[Redis]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.05)
    yield client
    await client.aclose()


async def test_a_burst_is_allowed_then_refused_until_a_token_is_back(bucket: RedisTokenBucket) -> None:
    limit = Limit(rate_per_second=10, burst=5)

    decisions = [await bucket.take("k", limit, NOW) for _ in range(6)]

    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[-1].retry_after_seconds == pytest.approx(0.1)
    assert decisions[0].retry_after_seconds == 0


async def test_tokens_refill_with_the_time_passed_in_but_never_beyond_the_burst(
    bucket: RedisTokenBucket,
) -> None:
    limit = Limit(rate_per_second=10, burst=5)
    for _ in range(5):
        await bucket.take("k", limit, NOW)

    later = [await bucket.take("k", limit, NOW + 0.25) for _ in range(3)]
    much_later = [await bucket.take("k", limit, NOW + 100) for _ in range(6)]

    assert [d.allowed for d in later] == [True, True, False]
    assert later[-1].retry_after_seconds == pytest.approx(0.05)
    assert [d.allowed for d in much_later] == [True] * 5 + [False]


async def test_a_replica_whose_clock_is_behind_neither_refills_nor_gives_tokens_back(
    bucket: RedisTokenBucket,
) -> None:
    limit = Limit(rate_per_second=10, burst=2)
    await bucket.take("k", limit, NOW)
    await bucket.take("k", limit, NOW)

    behind = await bucket.take("k", limit, NOW - 5)
    after = [await bucket.take("k", limit, NOW + 0.15) for _ in range(2)]  # 1.5 tokens back

    assert not behind.allowed
    assert [d.allowed for d in after] == [True, False]


async def test_two_replicas_share_one_bucket(infra: Infra, redis: Redis, key_prefix: str) -> None:
    other_client = Redis.from_url(infra.redis_url)
    replicas = [RedisTokenBucket(redis, prefix=key_prefix), RedisTokenBucket(other_client, prefix=key_prefix)]
    limit = Limit(rate_per_second=1, burst=4)
    try:
        decisions = [await replicas[i % 2].take("shared", limit, NOW) for i in range(6)]
    finally:
        await other_client.aclose()

    assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2


async def test_two_hundred_concurrent_takes_never_exceed_the_burst(infra: Infra, key_prefix: str) -> None:
    # a blocking pool queues callers beyond its size instead of failing, as a busy gateway needs
    client = Redis.from_pool(BlockingConnectionPool.from_url(infra.redis_url, max_connections=50))
    bucket = RedisTokenBucket(client, prefix=key_prefix)
    limit = Limit(rate_per_second=0.001, burst=20)

    try:
        decisions = await asyncio.gather(*(bucket.take("hot", limit, NOW) for _ in range(200)))
    finally:
        await client.aclose()

    assert sum(d.allowed for d in decisions) == 20
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))


async def test_a_costly_take_spends_several_tokens_and_waits_for_all_of_them(
    bucket: RedisTokenBucket,
) -> None:
    limit = Limit(rate_per_second=2, burst=10)

    first = await bucket.take("k", limit, NOW, cost=4)
    second = await bucket.take("k", limit, NOW, cost=4)
    third = await bucket.take("k", limit, NOW, cost=4)
    cheap = await bucket.take("k", limit, NOW)

    assert (first.allowed, first.remaining) == (True, 6)
    assert (second.allowed, second.remaining) == (True, 2)
    assert third == Decision(allowed=False, retry_after_seconds=1.0, remaining=2)
    assert cheap.allowed


async def test_a_cost_above_the_burst_is_a_configuration_error(bucket: RedisTokenBucket) -> None:
    with pytest.raises(ValueError, match="cost"):
        await bucket.take("k", Limit(rate_per_second=1, burst=3), NOW, cost=4)


async def test_an_idle_bucket_key_expires_after_twice_the_refill_time(
    bucket: RedisTokenBucket, redis: Redis, key_prefix: str
) -> None:
    await bucket.take("idle", Limit(rate_per_second=100, burst=2), NOW)  # full again after 20 ms
    ttl = await redis.pttl(f"{key_prefix}:idle")

    await asyncio.sleep(0.1)

    assert 0 < ttl <= 40
    assert await redis.exists(f"{key_prefix}:idle") == 0


async def test_the_limiter_uses_the_shared_bucket_while_redis_is_up(
    bucket: RedisTokenBucket,
) -> None:
    replicas = [RateLimiter(bucket, LocalTokenBucket()), RateLimiter(bucket, LocalTokenBucket())]
    limit = Limit(rate_per_second=1, burst=3)

    decisions = [await replicas[i % 2].check("k", limit, NOW, costly=False) for i in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]


async def test_without_redis_reads_are_limited_per_replica_and_costly_writes_refused(
    unreachable_redis: Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(RedisTokenBucket(unreachable_redis, prefix=key_prefix), LocalTokenBucket())
    limit = Limit(rate_per_second=1, burst=3)

    reads = [await limiter.check("reader", limit, NOW, costly=False) for _ in range(4)]
    write = await limiter.check("writer", limit, NOW, costly=True)

    assert [d.allowed for d in reads] == [True, True, True, False]
    assert write == Decision(allowed=False, retry_after_seconds=1.0, remaining=0, unavailable=True)


async def test_two_hundred_concurrent_writes_under_the_limit_all_pass_with_the_gateways_settings(
    infra: Infra, key_prefix: str
) -> None:
    client = connect_redis(
        infra.redis_url, DEFAULT_REDIS_MAX_CONNECTIONS, DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS
    )
    limiter = RateLimiter(RedisTokenBucket(client, prefix=key_prefix), LocalTokenBucket(), DEFAULT_LIMITER)
    limit = Limit(rate_per_second=1000, burst=2000)

    try:
        decisions = await asyncio.gather(
            *(limiter.check("service-1:write", limit, NOW, costly=True) for _ in range(200))
        )
        left = await RedisTokenBucket(client, prefix=key_prefix).take("service-1:write", limit, NOW)
    finally:
        await client.aclose()

    assert all(d.allowed for d in decisions)
    # every one was counted in the shared bucket, with the tokens the first took ahead
    assert left.remaining == 2000 - 201 - tokens_ahead(limit)


async def test_a_paused_redis_makes_costly_writes_unavailable_never_the_callers_limit(
    infra: Infra, redis: Redis, key_prefix: str
) -> None:
    client = connect_redis(infra.redis_url, 16, 2.0)
    settings = LimiterSettings(
        redis_timeout_seconds=0.1, redis_down_after_seconds=0.3, redis_retry_seconds=0.5
    )
    limiter = RateLimiter(RedisTokenBucket(client, prefix=key_prefix), LocalTokenBucket(), settings)
    limit = Limit(rate_per_second=1000, burst=2000)
    await limiter.check("w", limit, NOW, costly=True)  # connected and answering

    await redis.execute_command("CLIENT", "PAUSE", "1500", "ALL")
    try:
        during = []
        for _ in range(10):
            during.append(await limiter.check("w", limit, NOW, costly=True))
            await asyncio.sleep(0.05)
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    await asyncio.sleep(0.6)
    after = await limiter.check("w", limit, NOW, costly=True)
    await client.aclose()

    assert not [d for d in during if not d.allowed and not d.unavailable], "refused as over the limit"
    assert any(d.unavailable for d in during)
    assert during[0].allowed  # one slow answer is not an outage
    assert after.allowed and not after.unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_replica_spends_the_tokens_it_took_ahead_without_asking_redis_until_they_lapse(
    bucket: RedisTokenBucket, redis: Redis, key_prefix: str
) -> None:
    clock = Clock()
    limiter = RateLimiter(bucket, LocalTokenBucket(), monotonic=clock)
    limit = Limit(rate_per_second=100, burst=200)  # 20 ahead

    async def shared_tokens() -> float:
        return float(await redis.hget(f"{key_prefix}:k", "tokens"))

    first = await limiter.check("k", limit, NOW, costly=False)
    after_first = await shared_tokens()
    spent_in_hand = [await limiter.check("k", limit, NOW, costly=False) for _ in range(20)]
    after_in_hand = await shared_tokens()
    await limiter.check("k", limit, NOW, costly=False)  # nothing left in hand: asks again
    after_asking_again = await shared_tokens()
    clock.now = AHEAD_SECONDS + 0.01  # the 20 taken by that call lapse unspent
    await limiter.check("k", limit, NOW, costly=False)

    assert first.allowed and all(d.allowed for d in spent_in_hand)
    assert after_first == 200 - 21
    assert after_in_hand == after_first
    assert after_asking_again == after_first - 21
    assert await shared_tokens() == after_asking_again - 21


async def test_replicas_taking_tokens_ahead_never_pass_more_than_the_shared_burst(
    infra: Infra, key_prefix: str
) -> None:
    client = connect_redis(
        infra.redis_url, DEFAULT_REDIS_MAX_CONNECTIONS, DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS
    )
    shared = RedisTokenBucket(client, prefix=key_prefix)
    # Redis given all the time it needs: on a busy machine 300 calls at once wait past the default 1 s
    # for a pooled connection, and a call that waited too long is rightly decided by its replica's own
    # bucket (seen in a clean-clone run: 299 passed); this test is about the tokens taken ahead
    patient = LimiterSettings(redis_timeout_seconds=60.0, redis_down_after_seconds=120.0)
    replicas = [RateLimiter(shared, LocalTokenBucket(), patient) for _ in range(3)]
    limit = Limit(rate_per_second=100, burst=200)

    try:
        decisions = [await replicas[i % 3].check("k", limit, NOW, costly=True) for i in range(300)]
        concurrent = await asyncio.gather(
            *(replicas[i % 3].check("c", limit, NOW, costly=True) for i in range(300))
        )
    finally:
        await client.aclose()

    assert sum(d.allowed for d in decisions) == 200
    assert not any(d.unavailable for d in concurrent)
    # concurrent callers on one replica each ask Redis for their own token while one asks ahead, so
    # what it took ahead may be left unspent: never more than the burst, at most each replica's
    # tokens ahead fewer
    assert 200 - 3 * tokens_ahead(limit) <= sum(d.allowed for d in concurrent) <= 200
    assert all(d.retry_after_seconds > 0 for d in decisions if not d.allowed)


async def test_tokens_taken_ahead_under_a_generous_limit_are_not_spent_under_a_tight_one(
    bucket: RedisTokenBucket, redis: Redis, key_prefix: str
) -> None:
    # the same principal and class (one key) with a token of other roles: the call is decided by the
    # shared bucket under its own limit, not paid from what was taken ahead under the other
    limiter = RateLimiter(bucket, LocalTokenBucket())
    generous, tight = Limit(rate_per_second=100, burst=200), Limit(rate_per_second=1, burst=3)

    await limiter.check("k", generous, NOW, costly=False)  # 20 more in hand for `generous`
    before = float(await redis.hget(f"{key_prefix}:k", "tokens"))
    await limiter.check("k", tight, NOW, costly=False)
    after = float(await redis.hget(f"{key_prefix}:k", "tokens"))
    await limiter.check("k", generous, NOW, costly=False)  # still in hand for `generous`

    assert (before, after) == (179, 178)
    assert float(await redis.hget(f"{key_prefix}:k", "tokens")) == 178
