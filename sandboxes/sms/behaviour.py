"""The provider's habits, switchable at runtime: latency, failures, and its throttle."""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any


class ControlError(ValueError):
    """A switch the sandbox does not know, or a value it cannot take."""


@dataclass(frozen=True)
class Behaviour:
    latency_ms: int = 0
    # HTTP 503 ServiceUnavailable on this share of calls (nothing is sent); fail_next: the next N calls
    failure_rate: float = 0.0
    fail_next: int = 0
    # isv.BUSINESS_LIMIT_CONTROL (Aliyun's per-number flow control) on this share, or the next N calls
    throttle_rate: float = 0.0
    throttle_next: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = {"failure_rate", "throttle_rate"}
_COUNTS = {"latency_ms", "fail_next", "throttle_next"}
FIELDS = tuple(field.name for field in dataclasses.fields(Behaviour))


def _checked(name: str, value: Any) -> Any:
    if name in _RATES:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ControlError(f"{name} must be a number between 0 and 1, got {value!r}")
        return float(value)
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ControlError(f"{name} must be a whole number >= 0, got {value!r}")
        return value
    raise ControlError(f"unknown switch {name!r}; known: {', '.join(FIELDS)}")


def parse_assignment(text: str) -> tuple[str, Any]:
    """``throttle_rate=0.5``; the value is JSON when it parses."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ControlError(f"expected SWITCH=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, _checked(name, value)


class Control:
    """The switches in force, their seeded dice, and the countdowns (the next N calls)."""

    def __init__(self, seed: int, startup: tuple[tuple[str, Any], ...] = ()) -> None:
        self._seed = seed
        self._startup = startup
        self.behaviour = Behaviour()
        self._dice = random.Random(seed)
        self.reset()

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self._dice = random.Random(self._seed)
        self.change(dict(self._startup))

    def change(self, changes: dict[str, Any]) -> None:
        checked = {name: _checked(name, value) for name, value in changes.items()}
        self.behaviour = dataclasses.replace(self.behaviour, **checked)

    def _countdown(self, name: str) -> bool:
        left = getattr(self.behaviour, name)
        if left <= 0:
            return False
        self.behaviour = dataclasses.replace(self.behaviour, **{name: left - 1})
        return True

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._dice.random() < rate

    def fails(self) -> bool:
        return self._countdown("fail_next") or self._roll(self.behaviour.failure_rate)

    def throttles(self) -> bool:
        return self._countdown("throttle_next") or self._roll(self.behaviour.throttle_rate)
