"""The outside world's habits, per carrier, switchable at runtime: what each switch means and its checks."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

CARRIERS = ("sf", "zto", "yto", "ems", "jd", "cainiao")
ALL = "all"


class ControlError(ValueError):
    """A switch the sandbox does not know, or a value it cannot take."""


@dataclass(frozen=True)
class Behaviour:
    latency_ms: int = 0
    failure_rate: float = 0.0
    timeout_after_create_rate: float = 0.0
    timeout_mode: str = "hang"
    hang_ms: int = 30_000
    dead: bool = False
    dead_mode: str = "close"
    rate_limit_per_s: float = 0.0
    duplicate_push_rate: float = 0.0
    reorder_pushes: bool = False
    code_correction: bool = False
    no_first_scan: float = 0.0
    push_enabled: bool = True
    push_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = {"failure_rate", "timeout_after_create_rate", "duplicate_push_rate", "no_first_scan"}
_COUNTS = {"latency_ms", "hang_ms"}
_FLAGS = {"dead", "reorder_pushes", "code_correction", "push_enabled"}
_MODES = {"timeout_mode": ("hang", "drop"), "dead_mode": ("close", "503")}
FIELDS = tuple(field.name for field in dataclasses.fields(Behaviour))


def _checked(name: str, value: Any) -> Any:
    if name in _RATES:
        # no_first_scan reads naturally as a flag too: true means every parcel
        if isinstance(value, bool) and name == "no_first_scan":
            return 1.0 if value else 0.0
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ControlError(f"{name} must be a number between 0 and 1, got {value!r}")
        return float(value)
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ControlError(f"{name} must be a whole number of milliseconds >= 0, got {value!r}")
        return value
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise ControlError(f"{name} must be true or false, got {value!r}")
        return value
    if name in _MODES:
        if value not in _MODES[name]:
            raise ControlError(f"{name} must be one of {', '.join(_MODES[name])}, got {value!r}")
        return value
    if name == "rate_limit_per_s":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ControlError(f"rate_limit_per_s must be a number >= 0 (0: no limit), got {value!r}")
        return float(value)
    if name == "push_url":
        if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            raise ControlError(f"push_url must be an http(s) URL or null, got {value!r}")
        return value
    raise ControlError(f"unknown switch {name!r}; known: {', '.join(FIELDS)}")


def changed(behaviour: Behaviour, changes: dict[str, Any]) -> Behaviour:
    return dataclasses.replace(behaviour, **{name: _checked(name, value) for name, value in changes.items()})


def carriers_named(name: str) -> tuple[str, ...]:
    if name == ALL:
        return CARRIERS
    if name not in CARRIERS:
        raise ControlError(f"unknown carrier {name!r}; known: {', '.join((*CARRIERS, ALL))}")
    return (name,)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``sf.latency_ms=50`` (or ``all.dead=true``) from the command line; the value is JSON when it parses."""
    target, sep, raw = text.partition("=")
    carrier, dot, name = target.partition(".")
    if not sep or not dot or not name:
        raise ControlError(f"expected CARRIER.SWITCH=VALUE, got {text!r}")
    carriers_named(carrier)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    _checked(name, value)
    return carrier, name, value
