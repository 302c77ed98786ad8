"""The one way a secret is checked for a token (a service account's client secret, a console user's
password): the failure throttle first (no hashing for a blocked id or address), the capped off-loop
check, then the failure counted and audited by reason, or the id's failures cleared."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import ChecksBusy, TooManyAttempts
from services.gateway.domain.principal import Caller
from services.gateway.handlers.ports import AuditLog, FailureThrottle
from services.kit.errors import Unauthenticated, Unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class CredentialGuard:
    throttle: FailureThrottle
    attempts: AuditLog
    method: str
    reason: AttemptReason
    # what a caller is told when the checks are saturated, and when the secret is wrong
    busy: str
    refused: str

    async def check(self, key: str, caller: Caller, attempt: Callable[[], Awaitable[T | None]]) -> T:
        """`attempt`'s answer; None from it is a wrong secret (counted against `key` and the address)."""
        wait = await self.throttle.blocked_for(key, caller.source_ip)
        if wait > 0:
            raise TooManyAttempts(wait, f"too many failed attempts; retry after {math.ceil(wait)}s")
        try:
            found = await attempt()
        except ChecksBusy:
            raise Unavailable(self.busy) from None
        if found is None:
            await self.throttle.failed(key, caller.source_ip)
            self.attempts.failed_attempt(caller, self.method, "UNAUTHENTICATED", self.reason)
            raise Unauthenticated(self.refused)
        await self.throttle.succeeded(key)
        return found
