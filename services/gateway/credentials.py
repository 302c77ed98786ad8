"""Client-credential checks that an anonymous flood cannot turn into a stalled gateway.

PBKDF2 is slow on purpose (≈ 50 ms per check at 100,000 iterations here). Run on the event loop, a few
callers sending wrong secrets stall every other call the replica serves; so checks run in a small thread
pool (hashlib releases the GIL while it hashes), at most `max_concurrent` at a time, and a check over that
cap is refused at once as UNAVAILABLE instead of queueing behind the others.

Failed attempts are counted per client id and per source address in Redis (every replica sees them).
Past a number of free failures each further failure blocks that id or address for a growing time
(1 s, 2 s, 4 s … up to a cap); a blocked attempt is refused without hashing. When Redis cannot be
reached the counts are kept per replica instead: the throttle weakens (each replica counts on its own)
but never refuses a caller for Redis being down, and never lets a flood reach the hash pool unchecked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import redis.exceptions

from services.gateway import auth
from services.gateway.domain.errors import ChecksBusy

__all__ = ["ChecksBusy", "FailureThrottle", "SecretChecker", "ThrottleSettings", "backoff_seconds"]

log = logging.getLogger(__name__)


class SecretChecker:
    """`authenticate_client` off the event loop, with its own small concurrency cap."""

    def __init__(self, max_concurrent: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self._running = 0
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="secret-check")

    async def authenticate(
        self, accounts: Mapping[str, auth.ServiceAccount], client_id: str, secret: str
    ) -> auth.ServiceAccount:
        account: auth.ServiceAccount = await self._off_loop(
            auth.authenticate_client, accounts, client_id, secret
        )
        return account

    async def matches(self, secret: str, stored_hash: str | None) -> bool:
        """A console user's password (`auth.check_password`), under the same cap."""
        matched: bool = await self._off_loop(auth.check_password, secret, stored_hash)
        return matched

    async def _off_loop(self, check: Callable[..., Any], *args: Any) -> Any:
        # a counter, not a semaphore: a semaphore would queue callers for ever under a flood
        if self._running >= self.max_concurrent:
            raise ChecksBusy()
        self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, check, *args)
        finally:
            self._running -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ThrottleSettings:
    free_per_client: int = 5
    free_per_address: int = 50
    max_backoff_seconds: float = 300.0
    # the failures of an id or address are forgotten this long after its last one
    window_seconds: float = 900.0

    def __post_init__(self) -> None:
        if self.free_per_client < 0 or self.free_per_address < 0:
            raise ValueError("free failures must be 0 or more")
        if not (self.max_backoff_seconds >= 1 and self.window_seconds >= self.max_backoff_seconds):
            raise ValueError("max_backoff_seconds must be at least 1 and no longer than window_seconds")


def backoff_seconds(failures: int, free: int, cap: float) -> float:
    """0 up to `free` failures, then 1, 2, 4 … seconds, at most `cap`."""
    if failures <= free:
        return 0.0
    return float(min(cap, 2 ** min(failures - free - 1, 32)))


# KEYS[1] failure count, KEYS[2] block; ARGV free, cap (ms), window (ms). Returns the block in ms.
_FAIL_LUA = """
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local free = tonumber(ARGV[1])
if failures <= free then return 0 end
local block = math.min(tonumber(ARGV[2]), 1000 * 2 ^ math.min(failures - free - 1, 32))
redis.call('SET', KEYS[2], '1', 'PX', math.floor(block))
return math.floor(block)
"""


class FailureThrottle:
    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        settings: ThrottleSettings = ThrottleSettings(),
        monotonic: Callable[[], float] = time.monotonic,
        prefix: str = "oms:authfail",
        max_local_keys: int = 10_000,
    ) -> None:
        self._redis = redis_client
        self._fail = redis_client.register_script(_FAIL_LUA)
        self.settings = settings
        self._monotonic = monotonic
        self._prefix = prefix
        self._max_local_keys = max_local_keys
        # key → (failures, forget at, blocked until): the fallback while Redis is unreachable
        self._local: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def _keys(self, client_id: str, address: str) -> list[tuple[str, int]]:
        return [
            (f"client:{client_id[:128]}", self.settings.free_per_client),
            (f"address:{address[:64]}", self.settings.free_per_address),
        ]

    async def blocked_for(self, client_id: str, address: str) -> float:
        """Seconds until an attempt for this id from this address may be checked again (0: now)."""
        keys = [name for name, _ in self._keys(client_id, address)]
        try:
            waits = [await self._redis.pttl(f"{self._prefix}:block:{name}") for name in keys]
            return max(0.0, *(wait / 1000 for wait in waits))
        except (redis.exceptions.RedisError, OSError) as error:
            self._warn(error)
            now = self._monotonic()
            return max(0.0, *(self._local_entry(name, now)[2] - now for name in keys))

    async def failed(self, client_id: str, address: str) -> float:
        """Count a failed attempt; returns the block it starts (0 while failures are still free)."""
        blocks = []
        for name, free in self._keys(client_id, address):
            try:
                blocked_ms = await self._fail(
                    keys=[f"{self._prefix}:count:{name}", f"{self._prefix}:block:{name}"],
                    args=[
                        free,
                        int(self.settings.max_backoff_seconds * 1000),
                        int(self.settings.window_seconds * 1000),
                    ],
                )
                blocks.append(int(blocked_ms) / 1000)
            except (redis.exceptions.RedisError, OSError) as error:
                self._warn(error)
                blocks.append(self._local_failed(name, free))
        return max(blocks)

    async def succeeded(self, client_id: str) -> None:
        """A right secret clears its client id's failures (never the address's: one valid secret must
        not let its holder wipe the count of their guesses at other ids)."""
        name = f"client:{client_id[:128]}"
        self._local.pop(name, None)
        try:
            await self._redis.delete(f"{self._prefix}:count:{name}", f"{self._prefix}:block:{name}")
        except (redis.exceptions.RedisError, OSError) as error:
            self._warn(error)

    def _local_entry(self, name: str, now: float) -> tuple[int, float, float]:
        entry = self._local.get(name)
        if entry is None or entry[1] <= now:
            return (0, now + self.settings.window_seconds, 0.0)
        return entry

    def _local_failed(self, name: str, free: int) -> float:
        now = self._monotonic()
        failures, _, _ = self._local_entry(name, now)
        failures += 1
        block = backoff_seconds(failures, free, self.settings.max_backoff_seconds)
        self._local.pop(name, None)
        self._local[name] = (failures, now + self.settings.window_seconds, now + block if block else 0.0)
        while len(self._local) > self._max_local_keys:
            self._local.popitem(last=False)
        return block

    _last_warning = -math.inf

    def _warn(self, error: BaseException) -> None:
        moment = self._monotonic()
        if moment - self._last_warning >= 10.0:
            self._last_warning = moment
            log.warning(
                "credential throttle: Redis unavailable (%s), failed attempts are counted per replica",
                type(error).__name__,
            )
