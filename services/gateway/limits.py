"""Rate limits for the gateway: a cluster-wide token bucket in Redis, a per-replica fallback, and the
`RATE_LIMITS` setting's parser.

Time is always passed in (seconds, float) rather than read from Redis `TIME` or the local clock, so the
rules are testable without sleeping and the Redis and local buckets behave identically. Replicas' clocks
may disagree a little; the bucket never moves its timestamp backwards, so a replica that is behind can
neither refill nor un-spend tokens.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    rate_per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate_per_second > 0 and math.isfinite(self.rate_per_second)):
            raise ValueError(f"rate_per_second must be a positive number, not {self.rate_per_second}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: float
    remaining: int
    # refused because the limiter cannot count (Redis down), not because the caller is over its limit
    unavailable: bool = False


def _check_cost(limit: Limit, cost: int) -> None:
    # a cost above the burst could never be paid; refusing forever would hide a configuration error
    if not 1 <= cost <= limit.burst:
        raise ValueError(f"cost must be between 1 and the burst ({limit.burst}), not {cost}")


def _retry_after(tokens: float, limit: Limit, cost: int) -> float:
    """Seconds until `cost` tokens are back (one token for the usual cost of 1), rounded up to 1 ms."""
    return math.ceil((cost - tokens) / limit.rate_per_second * 1000) / 1000


def _idle_ttl_ms(limit: Limit) -> int:
    # a full refill takes burst/rate; after twice that an idle key is indistinguishable from a fresh one
    return max(1, math.ceil(2 * limit.burst / limit.rate_per_second * 1000))


# KEYS[1] bucket; ARGV rate, burst, now, cost, ttl_ms, want (≥ cost). Returns {tokens granted (0, or
# from cost up to want, as many whole tokens as there are), tokens left as a string}: Lua numbers come
# back to the client truncated to integers, the string keeps the fraction.
_TAKE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local want = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local granted = 0
if tokens >= cost then
  granted = math.max(cost, math.min(want, math.floor(tokens)))
  tokens = tokens - granted
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {granted, string.format('%.17g', tokens)}
"""


class RedisTokenBucket:
    """One bucket per key shared by every replica; refill, take and expiry happen in one atomic script."""

    def __init__(self, redis: redis.asyncio.Redis, prefix: str = "oms:rl") -> None:
        self._prefix = prefix
        # register_script runs EVALSHA and loads the script on NOSCRIPT, e.g. after a Redis restart
        self._take = redis.register_script(_TAKE_LUA)

    async def take(self, key: str, limit: Limit, now: float, cost: int = 1) -> Decision:
        decision, _ = await self.take_ahead(key, limit, now, cost, cost)
        return decision

    async def take_ahead(
        self, key: str, limit: Limit, now: float, cost: int = 1, want: int = 1
    ) -> tuple[Decision, int]:
        """`cost` tokens or a refusal, as `take`; when allowed, up to `want - cost` more tokens are taken
        with them, as many as the bucket holds, for the caller to spend later. Returns the decision and
        how many tokens were taken in all."""
        _check_cost(limit, cost)
        want = min(max(want, cost), limit.burst)
        granted, left = await self._take(
            keys=[f"{self._prefix}:{key}"],
            args=[repr(limit.rate_per_second), limit.burst, repr(now), cost, _idle_ttl_ms(limit), want],
        )
        tokens = float(left)
        if granted:
            return Decision(True, 0.0, math.floor(tokens)), int(granted)
        return Decision(False, _retry_after(tokens, limit, cost), math.floor(tokens)), 0


class LocalTokenBucket:
    """The in-process fallback with the Redis bucket's semantics; the least recently used keys are
    forgotten past `max_keys` (a forgotten key starts full, which is what an idle key would be anyway)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, limit: Limit, now: float, cost: int = 1) -> Decision:
        _check_cost(limit, cost)
        tokens, ts = self._buckets.pop(key, (float(limit.burst), now))
        if now > ts:
            tokens = min(float(limit.burst), tokens + (now - ts) * limit.rate_per_second)
            ts = now
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, ts)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if allowed:
            return Decision(True, 0.0, math.floor(tokens))
        return Decision(False, _retry_after(tokens, limit, cost), math.floor(tokens))


@dataclass(frozen=True)
class LimiterSettings:
    """How long one Redis answer may take, how long unanswered calls must go on before Redis counts as
    down, and how long a down Redis is then left alone (defaults sized by `bench/limiter.py`)."""

    redis_timeout_seconds: float = 1.0
    redis_down_after_seconds: float = 2.0
    redis_retry_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("redis_timeout_seconds", "redis_down_after_seconds", "redis_retry_seconds"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a number of seconds, not {value}")


_UNAVAILABLE = Decision(False, 1.0, 0, unavailable=True)
_WARN_EVERY_SECONDS = 10.0

# Tokens taken ahead from the shared bucket (see RateLimiter): for at most this long, at most this many
# and at most a tenth of the burst; a limit that would lease fewer than MIN_AHEAD is not leased at all
# (the token exchange's 5/s, say: every call asks Redis, exactly as before)
AHEAD_SECONDS = 0.25
MAX_AHEAD = 50
MIN_AHEAD = 2
MAX_LEASED_KEYS = 10_000


def tokens_ahead(limit: Limit) -> int:
    """How many tokens a replica takes beyond the one it spends when it asks the shared bucket."""
    ahead = math.floor(min(limit.rate_per_second * AHEAD_SECONDS, limit.burst / 10, MAX_AHEAD))
    return ahead if ahead >= MIN_AHEAD else 0


class RateLimiter:
    """Redis first. A slow answer is not an outage: the call that waited too long is decided by the
    per-replica bucket (same limits), and Redis keeps its place as long as answers still arrive, even
    late. Redis counts as down when it refuses connections, or when no call has been answered for
    `redis_down_after_seconds` while calls kept timing out; then reads fall back to the per-replica
    limiter and costly writes are refused as unavailable (never as the caller's limit), and Redis is
    tried again after `redis_retry_seconds`.

    Reads falling open keeps the platform browsable through a Redis outage; costly writes (ingest,
    uploads) falling closed protects the services behind the gateway, whose capacity the
    cluster-wide limit exists for.

    **Tokens taken ahead.** A call that must ask Redis takes, with its own token, up to
    `tokens_ahead(limit)` more (a tenth of the burst, at most 50, as many as the bucket holds); the
    next calls with the same key on this replica spend those without a round trip for the next
    `AHEAD_SECONDS`, after which what is left is dropped. The shared bucket has already counted every
    such token, so replicas together never pass more than the limit; a caller can only be refused a
    little early (by the tokens one replica dropped unspent). One call per key at a time asks ahead; the
    others that find nothing in hand meanwhile ask for their own token only.
    """

    def __init__(
        self,
        redis_bucket: RedisTokenBucket,
        local: LocalTokenBucket,
        settings: LimiterSettings = LimiterSettings(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis_bucket
        self._local = local
        self._settings = settings
        self._monotonic = monotonic
        self._skip_redis_until = -math.inf
        self._unanswered_since: float | None = None
        self._last_warning = -math.inf
        self._late: set[asyncio.Future[tuple[Decision, int]]] = set()
        # (key, limit) → (tokens in hand, monotonic time they lapse); those with a call asking ahead
        # right now. The limit is part of the key: a principal whose roles changed (a new token) must
        # not spend under a tight limit what it took under a generous one
        self._ahead: dict[tuple[str, Limit], tuple[int, float]] = {}
        self._asking: set[tuple[str, Limit]] = set()

    @property
    def redis_down(self) -> bool:
        return self._monotonic() < self._skip_redis_until

    async def check(self, key: str, limit: Limit, now: float, costly: bool) -> Decision:
        if self.redis_down:
            return self._fallback(key, limit, now, costly)
        held = (key, limit)
        in_hand = self._spend_ahead(held)
        if in_hand is not None:
            return in_hand
        ahead = 0 if held in self._asking else tokens_ahead(limit)
        take = asyncio.ensure_future(self._redis.take_ahead(key, limit, now, 1, 1 + ahead))
        if ahead:
            self._asking.add(held)
        try:
            # shielded: a call that times out here still finishes in the background, so its
            # connection goes back to the pool intact (cancelling mid-reply would drop it and make
            # the next callers reconnect) and its late answer shows that Redis is up
            decision, taken = await asyncio.wait_for(
                asyncio.shield(take), self._settings.redis_timeout_seconds
            )
        except TimeoutError:
            self._answer_late(take)
            return self._slow(key, limit, now, costly)
        except (redis.exceptions.RedisError, OSError) as error:
            # OSError covers the builtin ConnectionError (refused, reset)
            if _slow_not_down(error):
                return self._slow(key, limit, now, costly)
            self._down(error)
            return self._fallback(key, limit, now, costly)
        finally:
            if ahead:
                self._asking.discard(held)
        self._answered()
        if taken > 1:
            self._keep_ahead(held, taken - 1)
        elif not decision.allowed:
            self._ahead.pop(held, None)
        return decision

    def _spend_ahead(self, held: tuple[str, Limit]) -> Decision | None:
        in_hand = self._ahead.get(held)
        if in_hand is None:
            return None
        tokens, lapses = in_hand
        if lapses <= self._monotonic():
            del self._ahead[held]
            return None
        if tokens > 1:
            self._ahead[held] = (tokens - 1, lapses)
        else:
            del self._ahead[held]
        return Decision(True, 0.0, tokens - 1)

    def _keep_ahead(self, held: tuple[str, Limit], tokens: int) -> None:
        before, _ = self._ahead.pop(held, (0, 0.0))
        if len(self._ahead) >= MAX_LEASED_KEYS:  # dropping tokens in hand only refuses sooner
            self._ahead.clear()
        self._ahead[held] = (before + tokens, self._monotonic() + AHEAD_SECONDS)

    def _answer_late(self, take: asyncio.Future[tuple[Decision, int]]) -> None:
        self._late.add(take)

        def done(task: asyncio.Future[tuple[Decision, int]]) -> None:
            self._late.discard(task)
            if not task.cancelled() and task.exception() is None:
                self._answered()

        take.add_done_callback(done)

    def _answered(self) -> None:
        self._unanswered_since = None

    def _slow(self, key: str, limit: Limit, now: float, costly: bool) -> Decision:
        started = self._unanswered_since
        if started is None:
            self._unanswered_since = self._monotonic()
        elif self._monotonic() - started >= self._settings.redis_down_after_seconds:
            self._down(TimeoutError(f"no answer for {self._monotonic() - started:.1f}s"))
            return self._fallback(key, limit, now, costly)
        return self._local.take(key, limit, now)

    def _down(self, error: BaseException) -> None:
        moment = self._monotonic()
        self._skip_redis_until = moment + self._settings.redis_retry_seconds
        # kept until Redis answers again, so a retry that times out finds it still down at once
        if self._unanswered_since is None:
            self._unanswered_since = moment
        if moment - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = moment
            log.warning(
                "rate limiter: Redis unavailable (%s: %s), reads use the per-replica limit, costly writes "
                "are refused as unavailable",
                type(error).__name__,
                error,
            )

    def _fallback(self, key: str, limit: Limit, now: float, costly: bool) -> Decision:
        if costly:
            return _UNAVAILABLE
        return self._local.take(key, limit, now)


def _slow_not_down(error: BaseException) -> bool:
    """A socket timeout, or a BlockingConnectionPool that waited its `timeout` for a free connection
    (a ConnectionError that says so): a busy gateway or a slow Redis, not a refused connection."""
    if isinstance(error, redis.exceptions.TimeoutError):
        return True
    return isinstance(error, redis.exceptions.ConnectionError) and "No connection available" in str(error)


def connect_redis(url: str, max_connections: int, socket_timeout_seconds: float) -> redis.asyncio.Redis:
    """The gateway's one Redis client. A blocking pool: under a burst, callers wait for a connection
    instead of failing; the limiter's own timeout bounds how long a check may wait."""
    return redis.asyncio.Redis.from_pool(
        redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout_seconds,
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=socket_timeout_seconds,
        )
    )


_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_ENTRY = re.compile(
    r"(?P<name>(?:(?:role|key):[^\s=]+\.)?[A-Za-z_][A-Za-z0-9_-]*)"
    r"=(?P<count>\d+(?:\.\d+)?)/(?P<period>[smh]):(?P<burst>\d+)"
)


def parse_limits(text: str) -> dict[str, Limit]:
    """`read=50/s:100,role:admin.read=500/s:1000,key:tb-1.write=100/s:200` → {name: Limit}, names as written.

    A name is a method class, `role:<role>.<class>` or `key:<key id>.<class>`; the rate is per second,
    minute or hour; the number after the colon is the burst.
    """
    limits: dict[str, Limit] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise ValueError(f"bad rate limit {entry!r}: expected <name>=<count>/<s|m|h>:<burst>")
        name = match["name"]
        if name in limits:
            raise ValueError(f"bad rate limit {entry!r}: {name!r} is given twice")
        try:
            limits[name] = Limit(float(match["count"]) / _PERIODS[match["period"]], int(match["burst"]))
        except ValueError as error:
            raise ValueError(f"bad rate limit {entry!r}: {error}") from None
    return limits


def limit_for(limits: Mapping[str, Limit], method_class: str, roles: Iterable[str], key_id: str) -> Limit:
    """The key's own limit, else the most generous of its roles' limits, else the method class default."""
    specific = limits.get(f"key:{key_id}.{method_class}")
    if specific is not None:
        return specific
    by_role = [limits[name] for name in (f"role:{role}.{method_class}" for role in roles) if name in limits]
    if by_role:
        return max(by_role, key=lambda limit: (limit.rate_per_second, limit.burst))
    try:
        return limits[method_class]
    except KeyError:
        raise KeyError(f"no rate limit configured for method class {method_class!r}") from None
