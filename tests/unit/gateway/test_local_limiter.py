from __future__ import annotations

import asyncio
import logging

import pytest

from services.gateway.limits import (
    Decision,
    Limit,
    LimiterSettings,
    LocalTokenBucket,
    RateLimiter,
    RedisTokenBucket,
    limit_for,
    parse_limits,
    tokens_ahead,
)

NOW = 1_000.0


class FlakyRedisBucket(RedisTokenBucket):
    """Stands in for Redis being down (raising) or back (answering from a local bucket)."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self._answers = LocalTokenBucket()

    async def take_ahead(
        self, key: str, limit: Limit, now: float, cost: int = 1, want: int = 1
    ) -> tuple[Decision, int]:
        self.calls += 1
        if self.down:
            raise ConnectionError("connection refused")
        decision = self._answers.take(key, limit, now, cost)
        return decision, cost if decision.allowed else 0


def test_the_local_bucket_allows_the_burst_then_refuses() -> None:
    bucket = LocalTokenBucket()
    limit = Limit(rate_per_second=4, burst=2)

    decisions = [bucket.take("k", limit, NOW) for _ in range(3)]

    assert decisions == [Decision(True, 0.0, 1), Decision(True, 0.0, 0), Decision(False, 0.25, 0)]


def test_the_local_bucket_refills_with_elapsed_time_up_to_the_burst() -> None:
    bucket = LocalTokenBucket()
    limit = Limit(rate_per_second=4, burst=2)
    bucket.take("k", limit, NOW, cost=2)

    assert bucket.take("k", limit, NOW + 0.25).allowed
    assert not bucket.take("k", limit, NOW + 0.25).allowed
    assert bucket.take("k", limit, NOW + 60, cost=2).remaining == 0


def test_the_retry_after_is_rounded_up_to_a_millisecond() -> None:
    bucket = LocalTokenBucket()
    limit = Limit(rate_per_second=3, burst=1)
    bucket.take("k", limit, NOW)

    assert bucket.take("k", limit, NOW).retry_after_seconds == 0.334


def test_the_local_bucket_forgets_the_least_recently_used_keys() -> None:
    bucket = LocalTokenBucket(max_keys=2)
    limit = Limit(rate_per_second=0.001, burst=1)
    bucket.take("a", limit, NOW)
    bucket.take("b", limit, NOW)
    bucket.take("a", limit, NOW)  # "a" is now the most recently used
    bucket.take("c", limit, NOW)

    assert bucket.take("b", limit, NOW).allowed  # forgotten, so full again
    assert not bucket.take("c", limit, NOW).allowed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowRedisBucket(RedisTokenBucket):
    """Answers every call, after `delay` seconds (a Redis, or an event loop, that is slow but up)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._answers = LocalTokenBucket()

    async def take_ahead(
        self, key: str, limit: Limit, now: float, cost: int = 1, want: int = 1
    ) -> tuple[Decision, int]:
        await asyncio.sleep(self.delay)
        decision = self._answers.take(key, limit, now, cost)
        return decision, cost if decision.allowed else 0


async def test_the_limiter_tries_redis_again_once_the_retry_interval_has_passed() -> None:
    redis_bucket, clock = FlakyRedisBucket(), Clock()
    limiter = RateLimiter(redis_bucket, LocalTokenBucket(), LimiterSettings(redis_retry_seconds=1.0), clock)
    limit = Limit(rate_per_second=1, burst=5)

    await limiter.check("k", limit, NOW, costly=False)
    clock.now = 0.5
    await limiter.check("k", limit, NOW + 0.5, costly=False)
    calls_while_down = redis_bucket.calls
    redis_bucket.down = False
    clock.now = 1.0
    costly = await limiter.check("k", limit, NOW + 1.0, costly=True)

    assert calls_while_down == 1
    assert costly.allowed
    assert redis_bucket.calls == 2


async def test_a_refused_connection_refuses_costly_writes_as_unavailable_not_as_the_callers_limit() -> None:
    limiter = RateLimiter(FlakyRedisBucket(), LocalTokenBucket())
    limit = Limit(rate_per_second=1, burst=5)

    write = await limiter.check("k", limit, NOW, costly=True)
    read = await limiter.check("k", limit, NOW, costly=False)

    assert write == Decision(allowed=False, retry_after_seconds=1.0, remaining=0, unavailable=True)
    assert read.allowed and not read.unavailable


async def test_a_slow_answer_is_decided_by_the_local_bucket_and_redis_is_not_taken_for_down() -> None:
    redis_bucket = SlowRedisBucket(delay=0.05)
    limiter = RateLimiter(
        redis_bucket,
        LocalTokenBucket(),
        LimiterSettings(redis_timeout_seconds=0.01, redis_down_after_seconds=0.5),
    )
    limit = Limit(rate_per_second=1000, burst=2000)

    decisions = [await limiter.check("k", limit, NOW, costly=True) for _ in range(5)]
    await asyncio.sleep(0.06)  # the late answers arrive: Redis is up
    redis_bucket.delay = 0
    answered = await limiter.check("k", limit, NOW, costly=True)

    assert all(d.allowed and not d.unavailable for d in decisions)
    assert not limiter.redis_down
    assert answered.allowed and answered.remaining < 2000 - 5


async def test_timeouts_with_no_answer_for_the_down_interval_make_redis_down() -> None:
    clock = Clock()
    limiter = RateLimiter(
        SlowRedisBucket(delay=10),
        LocalTokenBucket(),
        LimiterSettings(redis_timeout_seconds=0.01, redis_down_after_seconds=2.0, redis_retry_seconds=1.0),
        clock,
    )
    limit = Limit(rate_per_second=1000, burst=2000)

    early = await limiter.check("k", limit, NOW, costly=True)
    clock.now = 1.9
    still = await limiter.check("k", limit, NOW, costly=True)
    clock.now = 2.0
    down = await limiter.check("k", limit, NOW, costly=True)

    assert early.allowed and still.allowed
    assert down.unavailable and not down.allowed
    assert limiter.redis_down
    clock.now = 3.0  # the retry interval has passed, and the probe times out again
    retried = await limiter.check("k", limit, NOW, costly=True)
    assert retried.unavailable


async def test_the_limiter_warns_about_redis_at_most_once_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limiter = RateLimiter(
        FlakyRedisBucket(), LocalTokenBucket(), LimiterSettings(redis_retry_seconds=0), clock
    )
    limit = Limit(rate_per_second=100, burst=100)

    with caplog.at_level(logging.WARNING, logger="services.gateway.limits"):
        for second in (0, 1, 5, 9.9, 10, 15):
            clock.now = second
            await limiter.check("k", limit, NOW + second, costly=False)

    assert len(caplog.records) == 2


def test_limits_are_parsed_with_their_names_as_written() -> None:
    limits = parse_limits(
        "read=50/s:100, write=10/s:20,upload=5/s:10,role:admin.read=500/s:1000,key:tb-1.write=100/s:200,"
        "report=60/m:5"
    )

    assert limits == {
        "read": Limit(50, 100),
        "write": Limit(10, 20),
        "upload": Limit(5, 10),
        "role:admin.read": Limit(500, 1000),
        "key:tb-1.write": Limit(100, 200),
        "report": Limit(1, 5),
    }
    assert parse_limits("") == {}


@pytest.mark.parametrize(
    "entry",
    [
        "read=50:100",
        "read=50/s",
        "read=fast/s:100",
        "read=0/s:10",
        "read=5/s:0",
        "role:admin=5/s:1",
        "x:y.read=1/s:1",
    ],
)
def test_a_bad_limit_is_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(ValueError, match=entry):
        parse_limits(f"write=10/s:20,{entry}")


def test_a_limit_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_limits("read=1/s:1,read=2/s:2")


LIMITS = parse_limits("read=50/s:100,role:ops.read=100/s:100,role:admin.read=500/s:1000,key:tb-1.read=5/s:5")


def test_a_key_specific_limit_wins_over_roles_and_the_default() -> None:
    assert limit_for(LIMITS, "read", ["admin"], "tb-1") == Limit(5, 5)


def test_the_most_generous_of_the_roles_applies_without_a_key_specific_limit() -> None:
    assert limit_for(LIMITS, "read", ["ops", "admin", "viewer"], "tb-2") == Limit(500, 1000)


def test_the_class_default_applies_without_a_key_or_role_limit() -> None:
    assert limit_for(LIMITS, "read", ["viewer"], "tb-2") == Limit(50, 100)


def test_a_method_class_without_a_limit_is_a_configuration_error() -> None:
    with pytest.raises(KeyError, match="write"):
        limit_for(LIMITS, "write", [], "tb-2")


def test_tokens_are_taken_ahead_only_where_the_limit_leaves_room_for_them() -> None:
    # the defaults: the token exchange (5/s:10) asks Redis on every call; a read (50/s:100) takes a
    # tenth of its burst; a push (500/s:2000) at most 50, a quarter second's worth capped
    assert tokens_ahead(Limit(rate_per_second=5, burst=10)) == 0
    assert tokens_ahead(Limit(rate_per_second=50, burst=100)) == 10
    assert tokens_ahead(Limit(rate_per_second=20, burst=40)) == 4
    assert tokens_ahead(Limit(rate_per_second=500, burst=2000)) == 50
    assert tokens_ahead(Limit(rate_per_second=1000, burst=10)) == 0
