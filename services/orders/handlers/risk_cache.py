"""The active risk rule set, cached for a few seconds per process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.orders.domain import risk
from services.orders.handlers.ports import UnitOfWork


@dataclass
class RiskRules:
    """The active rule set, read again when older than `ttl_seconds` (another replica's activation is
    seen within that time; this replica's at once)."""

    ttl_seconds: float = 5.0
    monotonic: Callable[[], float] = time.monotonic
    _cached: risk.RuleSet | None = field(default=None, init=False)
    _loaded_at: float = field(default=float("-inf"), init=False)

    async def current(self, uow: UnitOfWork) -> risk.RuleSet:
        now = self.monotonic()
        if self._cached is None or now - self._loaded_at > self.ttl_seconds:
            stored = await uow.risk.active()
            self._cached = (
                risk.rule_set_from_document(stored.version, stored.document)
                if stored is not None
                else risk.rule_set_from_document(0, risk.default_document())
            )
            self._loaded_at = now
        return self._cached

    def forget(self) -> None:
        self._cached = None
