"""The channels' habits, per channel, switchable at runtime: what each switch means and its checks."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

CHANNELS = ("taobao", "douyin")
ALL = "all"


class ControlError(ValueError):
    """A switch the sandbox does not know, or a value it cannot take."""


@dataclass(frozen=True)
class Behaviour:
    # every API answer waits this long (slow answers)
    latency_ms: int = 0
    # the platform's own error (TOP code 15, Douyin 50002) on this share of calls; fail_next: the next N
    failure_rate: float = 0.0
    fail_next: int = 0
    # lifetime of access tokens issued from now on (Taobao's default is a day, Douyin's a week)
    token_lifetime_s: int = 86_400
    refresh_token_lifetime_s: int = 30 * 86_400
    # refresh grants are refused (the merchant's authorisation lapsed)
    refuse_refresh: bool = False
    # new orders are pushed to the webhook (false: the push stops, only polling finds them)
    push_enabled: bool = True
    # bytes of padding added to every new order's payload (a marketplace adding a large field)
    pad_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = {"failure_rate"}
_COUNTS = {"latency_ms", "fail_next", "pad_bytes"}
_POSITIVE = {"token_lifetime_s", "refresh_token_lifetime_s"}
_FLAGS = {"refuse_refresh", "push_enabled"}
FIELDS = tuple(field.name for field in dataclasses.fields(Behaviour))


def _checked(name: str, value: Any) -> Any:
    if name in _RATES:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ControlError(f"{name} must be a number between 0 and 1, got {value!r}")
        return float(value)
    if name in _COUNTS or name in _POSITIVE:
        low = 1 if name in _POSITIVE else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ControlError(f"{name} must be a whole number >= {low}, got {value!r}")
        return value
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise ControlError(f"{name} must be true or false, got {value!r}")
        return value
    raise ControlError(f"unknown switch {name!r}; known: {', '.join(FIELDS)}")


def changed(behaviour: Behaviour, changes: dict[str, Any]) -> Behaviour:
    return dataclasses.replace(behaviour, **{name: _checked(name, value) for name, value in changes.items()})


def channels_named(name: str) -> tuple[str, ...]:
    if name == ALL:
        return CHANNELS
    if name not in CHANNELS:
        raise ControlError(f"unknown channel {name!r}; known: {', '.join((*CHANNELS, ALL))}")
    return (name,)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``taobao.latency_ms=50`` (or ``all.failure_rate=0.1``); the value is JSON when it parses."""
    target, sep, raw = text.partition("=")
    channel, dot, name = target.partition(".")
    if not sep or not dot or not name:
        raise ControlError(f"expected CHANNEL.SWITCH=VALUE, got {text!r}")
    channels_named(channel)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    _checked(name, value)
    return channel, name, value
