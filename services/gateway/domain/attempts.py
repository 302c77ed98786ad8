"""Failed attempts (401 and 403), counted in memory and audited as one record per window.

A flood of bad tokens must leave a trace without becoming one: each attempt only bumps a counter keyed by
(window, address, method, result, reason class, principal); when a window has closed, its counters are
written to the audit log as one record each, with the count. The reason class says which check failed
(`bearer_token`, `client_secret`, `role_not_allowed`, …), never what the caller sent.

Past `max_keys` distinct keys in memory (an attacker rotating addresses) further attempts of the window
are counted under one key per method and result with the address `*`, so memory stays bounded and the
count stays right. Attempts still in memory when a replica dies are lost (at most one window's worth).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

OVERFLOW_ADDRESS = "*"


class AttemptReason(StrEnum):
    """Which check refused an attempt (the audit record's reason class)."""

    NO_CREDENTIALS = "no_credentials"
    BEARER_TOKEN = "bearer_token"
    API_KEY_SIGNATURE = "api_key_signature"
    CLIENT_SECRET = "client_secret"
    # a console user's sign-in with an unknown name or a wrong password
    PASSWORD = "password"
    ROLE_NOT_ALLOWED = "role_not_allowed"
    CUSTOMER_UNNAMED = "customer_unnamed"
    SCOPED_CALLER = "scoped_caller"
    NOT_PUBLIC = "not_public"
    TARGET_NOT_ALLOWED = "target_not_allowed"
    SERVICE_REFUSED = "service_refused"
    MANY_SOURCES = "many_sources"
    # a carrier's tracking push without its push token (SF) or with a wrong sign (Kuaidi100)
    PUSH_SIGNATURE = "push_signature"


# the refusals of a called service that count as failed attempts, like the gate's own
REFUSED_RESULTS = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


@dataclass(frozen=True)
class AttemptKey:
    window_start: float
    address: str
    method: str
    result: str
    reason: str
    principal: str
    principal_kind: str


class FailedAttempts:
    def __init__(self, window_seconds: float = 60.0, max_keys: int = 10_000) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._counts: dict[AttemptKey, int] = {}

    def add(
        self,
        now: float,
        address: str,
        method: str,
        result: str,
        reason: str,
        principal: str = "",
        principal_kind: str = "anonymous",
    ) -> None:
        start = math.floor(now / self.window_seconds) * self.window_seconds
        key = AttemptKey(start, address, method.lstrip("/"), result, reason, principal, principal_kind)
        if key not in self._counts and len(self._counts) >= self.max_keys:
            key = AttemptKey(
                start, OVERFLOW_ADDRESS, key.method, result, AttemptReason.MANY_SOURCES, "", "anonymous"
            )
        self._counts[key] = self._counts.get(key, 0) + 1

    def take_closed(self, now: float, everything: bool = False) -> list[tuple[AttemptKey, int]]:
        """The counters of windows that have ended (all of them with `everything`), removed."""
        closed = [key for key in self._counts if everything or key.window_start + self.window_seconds <= now]
        return [(key, self._counts.pop(key)) for key in closed]

    def put_back(self, taken: Iterable[tuple[AttemptKey, int]]) -> None:
        """Counters whose write failed return, to be written with the next flush."""
        for key, count in taken:
            self._counts[key] = self._counts.get(key, 0) + count

    def __len__(self) -> int:
        return len(self._counts)
