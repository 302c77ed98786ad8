"""The switches in force per provider, their seeded dice, and the countdown switches (the next N calls)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any

from sandboxes.payments.behaviour import PROVIDERS, Behaviour, changed, providers_named


class Control:
    def __init__(self, seed: int, startup: Iterable[tuple[str, str, Any]] = ()) -> None:
        self._seed = seed
        self._startup = tuple(startup)
        self._behaviours: dict[str, Behaviour] = {}
        self._dice: dict[str, random.Random] = {}
        self.reset()

    def reset(self) -> None:
        self._behaviours = {provider: Behaviour() for provider in PROVIDERS}
        # one generator per provider, so one provider's traffic does not shift another's dice
        self._dice = {provider: random.Random(f"{self._seed}:{provider}") for provider in PROVIDERS}
        for provider, name, value in self._startup:
            self.change(provider, {name: value})

    def change(self, provider: str, changes: dict[str, Any]) -> None:
        targets = providers_named(provider)
        updated = {target: changed(self._behaviours[target], changes) for target in targets}
        self._behaviours.update(updated)

    def of(self, provider: str) -> Behaviour:
        return self._behaviours[provider]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {provider: behaviour.as_dict() for provider, behaviour in self._behaviours.items()}

    def roll(self, provider: str, rate: float) -> bool:
        return rate > 0 and self._dice[provider].random() < rate

    def _countdown(self, provider: str, name: str) -> bool:
        left = getattr(self._behaviours[provider], name)
        if left <= 0:
            return False
        self._behaviours[provider] = dataclasses.replace(self._behaviours[provider], **{name: left - 1})
        return True

    def fails(self, provider: str) -> bool:
        """Does this call answer the provider's system error? (``fail_next`` first, then the dice.)"""
        return self._countdown(provider, "fail_next") or self.roll(provider, self.of(provider).failure_rate)

    def times_out(self, provider: str) -> bool:
        behaviour = self.of(provider)
        return self._countdown(provider, "timeout_next") or self.roll(
            provider, behaviour.timeout_after_accept_rate
        )
