"""At most one delivery of an alert per channel and dedupe key within a window, across replicas (Redis)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.gateway.domain.alerts import DEFAULT_WINDOW_SECONDS, dedupe_slot

logger = logging.getLogger(__name__)


class Deduper:
    """At most one delivery per (channel, dedupe_key) within a window, across replicas: Redis SET NX EX."""

    def __init__(
        self,
        redis: Any,
        prefix: str = "oms:alert",
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        timeout_seconds: float = 1.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_seconds = window_seconds
        # Bounded so a hung or retrying Redis client delays an alert by at most this, then we fail open.
        self.timeout_seconds = timeout_seconds

    def _key(self, channel: str, dedupe_key: str) -> str:
        return dedupe_slot(self.prefix, channel, dedupe_key)

    async def first(self, channel: str, dedupe_key: str) -> bool:
        """True the first time in the window. If Redis fails → True: better a duplicate than a lost alert."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                claimed = await self.redis.set(
                    self._key(channel, dedupe_key), "1", nx=True, ex=self.window_seconds
                )
        except Exception as error:  # any Redis or network failure: fail open
            logger.warning(
                "alert dedupe unavailable, delivering anyway",
                extra={"channel": channel, "dedupe_key": dedupe_key, "error": repr(error)},
            )
            return True
        return bool(claimed)

    async def release(self, channel: str, dedupe_key: str) -> None:
        """Give the window back after a delivery finally failed, so the next occurrence is tried again."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.redis.delete(self._key(channel, dedupe_key))
        except Exception as error:
            logger.warning(
                "alert dedupe release failed",
                extra={"channel": channel, "dedupe_key": dedupe_key, "error": repr(error)},
            )
