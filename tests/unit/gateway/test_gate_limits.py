"""How the gate answers a limiter's decision: the caller's limit, or a limiter that cannot count."""

from __future__ import annotations

from typing import Any, cast

import grpc
import pytest

from services.gateway import auth
from services.gateway.domain.policy import Klass, Reach, Rule
from services.gateway.gate import Gate, Refused
from services.gateway.limits import LocalTokenBucket, RateLimiter, parse_limits
from tests.unit.gateway.test_local_limiter import FlakyRedisBucket

WRITE = Rule(frozenset({"ops"}), Reach.STAFF, Klass.WRITE, mutating=True)
OPS = auth.Principal(subject="ops-1", kind="user", roles=frozenset({"ops"}))


def gate(redis_down: bool) -> Gate:
    bucket = FlakyRedisBucket()
    bucket.down = redis_down
    return Gate(
        jwt=cast(auth.JwtSettings, None),
        api_keys={},
        signature_window_seconds=300,
        redis=cast(Any, None),
        limiter=RateLimiter(bucket, LocalTokenBucket()),
        limits=parse_limits("write=1/s:1"),
        new_uow=lambda: cast(Any, None),
        signer=cast(Any, None),
        wall=lambda: 1_000.0,
    )


async def test_a_write_while_redis_is_down_is_unavailable_with_retry_after_not_the_callers_limit() -> None:
    with pytest.raises(Refused) as refused:
        await gate(redis_down=True)._limit("/m", WRITE, OPS, OPS.subject)

    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.message == "rate limiter unavailable; retry"
    assert refused.value.retry_after == 1.0


async def test_a_write_over_the_callers_limit_is_resource_exhausted() -> None:
    admitted = gate(redis_down=False)
    await admitted._limit("/m", WRITE, OPS, OPS.subject)

    with pytest.raises(Refused) as refused:
        await admitted._limit("/m", WRITE, OPS, OPS.subject)

    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit for write calls reached" in refused.value.message
