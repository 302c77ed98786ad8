"""The providers' habits, per provider, switchable at runtime: what each switch means and its checks."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

PROVIDERS = ("wechat_pay", "alipay")
ALL = "all"
OUTCOMES = ("SUCCESS", "CLOSED", "ABNORMAL")


class ControlError(ValueError):
    """A switch the sandbox does not know, or a value it cannot take."""


@dataclass(frozen=True)
class Behaviour:
    latency_ms: int = 0
    # SYSTEM_ERROR / ACQ.SYSTEM_ERROR on this share of calls (nothing is done); fail_next: the next N calls
    failure_rate: float = 0.0
    fail_next: int = 0
    # the refund is recorded, then the answer never comes in time (hang) or the connection is closed (drop)
    timeout_after_accept_rate: float = 0.0
    timeout_next: int = 0
    timeout_mode: str = "hang"
    hang_ms: int = 30_000
    # WeChat refunds: how long a new refund stays PROCESSING, and what it ends in
    processing_ms: int = 0
    refund_outcome: str = "SUCCESS"
    # notifications
    notify_enabled: bool = True
    notify_delay_ms: int = 0
    duplicate_notify_rate: float = 0.0
    reorder_notifications: bool = False
    reorder_window_ms: int = 1000

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = {"failure_rate", "timeout_after_accept_rate", "duplicate_notify_rate"}
_COUNTS = {
    "latency_ms",
    "hang_ms",
    "processing_ms",
    "notify_delay_ms",
    "reorder_window_ms",
    "fail_next",
    "timeout_next",
}
_FLAGS = {"notify_enabled", "reorder_notifications"}
_CHOICES = {"timeout_mode": ("hang", "drop"), "refund_outcome": OUTCOMES}
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
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise ControlError(f"{name} must be true or false, got {value!r}")
        return value
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ControlError(f"{name} must be one of {', '.join(_CHOICES[name])}, got {value!r}")
        return value
    raise ControlError(f"unknown switch {name!r}; known: {', '.join(FIELDS)}")


def changed(behaviour: Behaviour, changes: dict[str, Any]) -> Behaviour:
    return dataclasses.replace(behaviour, **{name: _checked(name, value) for name, value in changes.items()})


def providers_named(name: str) -> tuple[str, ...]:
    if name == ALL:
        return PROVIDERS
    if name not in PROVIDERS:
        raise ControlError(f"unknown provider {name!r}; known: {', '.join((*PROVIDERS, ALL))}")
    return (name,)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``wechat_pay.latency_ms=50`` (or ``all.failure_rate=0.1``); the value is JSON when it parses."""
    target, sep, raw = text.partition("=")
    provider, dot, name = target.partition(".")
    if not sep or not dot or not name:
        raise ControlError(f"expected PROVIDER.SWITCH=VALUE, got {text!r}")
    providers_named(provider)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    _checked(name, value)
    return provider, name, value
