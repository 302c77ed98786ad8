"""The switches in force per channel, their seeded dice, the countdowns, and revoked tokens."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any

from sandboxes.channels.behaviour import CHANNELS, Behaviour, changed, channels_named


class Control:
    def __init__(self, seed: int, startup: Iterable[tuple[str, str, Any]] = ()) -> None:
        self._seed = seed
        self._startup = tuple(startup)
        self._behaviours: dict[str, Behaviour] = {}
        self._dice: dict[str, random.Random] = {}
        # tokens issued before this unix second are refused (per channel)
        self.revoked_before: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self._behaviours = {channel: Behaviour() for channel in CHANNELS}
        self._dice = {channel: random.Random(f"{self._seed}:{channel}") for channel in CHANNELS}
        self.revoked_before = dict.fromkeys(CHANNELS, 0)
        for channel, name, value in self._startup:
            self.change(channel, {name: value})

    def change(self, channel: str, changes: dict[str, Any]) -> None:
        targets = channels_named(channel)
        updated = {target: changed(self._behaviours[target], changes) for target in targets}
        self._behaviours.update(updated)

    def revoke(self, channel: str, now: int) -> None:
        for target in channels_named(channel):
            self.revoked_before[target] = now + 1

    def of(self, channel: str) -> Behaviour:
        return self._behaviours[channel]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            channel: {**behaviour.as_dict(), "tokens_revoked_before": self.revoked_before[channel]}
            for channel, behaviour in self._behaviours.items()
        }

    def fails(self, channel: str) -> bool:
        """Does this call answer the platform's own error? (``fail_next`` first, then the dice.)"""
        left = self._behaviours[channel].fail_next
        if left > 0:
            self._behaviours[channel] = dataclasses.replace(self._behaviours[channel], fail_next=left - 1)
            return True
        rate = self._behaviours[channel].failure_rate
        return rate > 0 and self._dice[channel].random() < rate
