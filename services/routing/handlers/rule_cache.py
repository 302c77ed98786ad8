"""The active (and shadow) rule set and today's load per warehouse, kept in memory between plans."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date

from services.kit.errors import FailedPrecondition
from services.routing.domain.documents import from_document
from services.routing.domain.rules import RuleSet
from services.routing.handlers.ports import UnitOfWork


class RuleSetCache:
    """The active rule set, kept in memory: dropped on activation here and on `rules_activated` elsewhere."""

    def __init__(
        self, max_age_seconds: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age_seconds
        self._monotonic = monotonic
        self._rules: RuleSet | None = None
        self._shadow: RuleSet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._load: dict[str, int] = {}
        self._load_day: date | None = None
        self._load_at = 0.0

    def invalidate(self) -> None:
        self._rules = None

    async def load(self, uow: UnitOfWork) -> dict[str, int]:
        """Orders planned today per warehouse, re-read at most once a second (capacity is a soft limit).
        Read in the caller's transaction."""
        today = uow.clock.now().date()
        if self._load_day != today or self._monotonic() - self._load_at > 1.0:
            self._load = await uow.load.on(today)
            self._load_day, self._load_at = today, self._monotonic()
        return dict(self._load)

    async def active(self, uow: UnitOfWork) -> RuleSet:
        rules = self._rules
        if rules is not None and self._monotonic() - self._loaded_at < self.max_age:
            return rules
        async with self._lock:
            if self._rules is None or self._monotonic() - self._loaded_at >= self.max_age:
                async with uow:
                    active, shadow = await uow.rule_sets.active_and_shadow()
                if active is None:
                    raise FailedPrecondition("no rule set is active")
                self._rules = from_document(active.version, active.document)
                self._shadow = None if shadow is None else from_document(shadow.version, shadow.document)
                self._loaded_at = self._monotonic()
            assert self._rules is not None
            return self._rules

    async def shadow(self, uow: UnitOfWork) -> RuleSet | None:
        await self.active(uow)
        return self._shadow
