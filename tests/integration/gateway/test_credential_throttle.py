"""Failed client-credential attempts in real Redis: per client id and per address, with growing back-off."""

from __future__ import annotations

from redis.asyncio import Redis

from services.gateway.credentials import FailureThrottle, ThrottleSettings

SETTINGS = ThrottleSettings(free_per_client=2, free_per_address=4, max_backoff_seconds=4, window_seconds=60)


async def test_a_client_id_is_blocked_for_longer_after_each_failure_past_its_free_ones(
    redis: Redis, key_prefix: str
) -> None:
    throttle = FailureThrottle(redis, SETTINGS, prefix=key_prefix)

    blocks = [await throttle.failed("svc", f"10.0.0.{n}") for n in range(6)]

    assert blocks == [0, 0, 1, 2, 4, 4]
    assert 3 < await throttle.blocked_for("svc", "10.9.9.9") <= 4
    assert await throttle.blocked_for("other", "10.9.9.9") == 0


async def test_an_address_guessing_many_client_ids_is_blocked(redis: Redis, key_prefix: str) -> None:
    throttle = FailureThrottle(redis, SETTINGS, prefix=key_prefix)

    for n in range(5):
        await throttle.failed(f"id-{n}", "192.0.2.1")

    assert await throttle.blocked_for("a-fresh-id", "192.0.2.1") > 0
    assert await throttle.blocked_for("a-fresh-id", "192.0.2.2") == 0


async def test_a_right_secret_clears_its_client_ids_failures_but_not_the_addresss(
    redis: Redis, key_prefix: str
) -> None:
    throttle = FailureThrottle(redis, SETTINGS, prefix=key_prefix)
    for _ in range(3):
        await throttle.failed("svc", "192.0.2.1")

    await throttle.succeeded("svc")

    assert await throttle.blocked_for("svc", "192.0.2.9") == 0
    assert await throttle.failed("svc", "192.0.2.9") == 0


async def test_without_redis_failures_are_counted_per_replica() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    clock = [100.0]
    throttle = FailureThrottle(unreachable, SETTINGS, monotonic=lambda: clock[0])
    try:
        blocks = [await throttle.failed("svc", "192.0.2.1") for _ in range(3)]
        assert blocks == [0, 0, 1]
        assert await throttle.blocked_for("svc", "192.0.2.1") == 1
        clock[0] += 1.5
        assert await throttle.blocked_for("svc", "192.0.2.1") == 0
    finally:
        await unreachable.aclose()
