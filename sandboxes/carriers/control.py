"""The switches in force per carrier, their seeded dice and the per-second rate windows."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any

from sandboxes.carriers.behaviour import CARRIERS, Behaviour, carriers_named, changed


class Control:
    def __init__(self, seed: int, startup: Iterable[tuple[str, str, Any]] = ()) -> None:
        self._seed = seed
        self._startup = tuple(startup)
        self._behaviours: dict[str, Behaviour] = {}
        self._dice: dict[str, random.Random] = {}
        self._calls: dict[str, deque[float]] = {}
        self.reset()

    def reset(self) -> None:
        self._behaviours = {carrier: Behaviour() for carrier in CARRIERS}
        # one generator per carrier, so one carrier's traffic does not shift another's dice
        self._dice = {carrier: random.Random(f"{self._seed}:{carrier}") for carrier in CARRIERS}
        self._calls = {carrier: deque() for carrier in CARRIERS}
        for carrier, name, value in self._startup:
            self.change(carrier, {name: value})

    def change(self, carrier: str, changes: dict[str, Any]) -> None:
        targets = carriers_named(carrier)
        updated = {target: changed(self._behaviours[target], changes) for target in targets}
        self._behaviours.update(updated)

    def of(self, carrier: str) -> Behaviour:
        return self._behaviours[carrier]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {carrier: behaviour.as_dict() for carrier, behaviour in self._behaviours.items()}

    def roll(self, carrier: str, rate: float) -> bool:
        return rate > 0 and self._dice[carrier].random() < rate

    def admit(self, carrier: str, now: float) -> bool:
        """One call more within the carrier's limit for the last second?"""
        limit = self._behaviours[carrier].rate_limit_per_s
        if limit <= 0:
            return True
        calls = self._calls[carrier]
        while calls and calls[0] <= now - 1.0:
            calls.popleft()
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True
