"""Channel adapters: each sales channel's own order payload normalised into an `IngestOrder`.

Every module of this package except `base` is an adapter and defines `CHANNEL`, `parse(payload)`
and `order_ref(payload)`. Adapters are found by listing the package, so adding a channel is one
module plus its fixtures; nothing here changes (see docs/channels.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from services.kit.errors import InvalidArgument
from services.orders.domain.channels.base import MalformedPayload
from services.orders.domain.model import Channel, IngestOrder

__all__ = ["MalformedPayload", "channel_order_ref", "channels", "parse"]

_SHARED = frozenset({"base"})


def _discover() -> dict[Channel, ModuleType]:
    adapters: dict[Channel, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SHARED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        channel = getattr(module, "CHANNEL", None)
        # A half-written adapter must fail loudly at start-up, not quarantine every order later.
        if not isinstance(channel, Channel) or not callable(getattr(module, "parse", None)):
            raise ImportError(f"channel adapter {module.__name__} must define CHANNEL: Channel and parse()")
        if not callable(getattr(module, "order_ref", None)):
            raise ImportError(f"channel adapter {module.__name__} must define order_ref()")
        if channel in adapters:
            raise ImportError(f"{module.__name__} and {adapters[channel].__name__} both adapt {channel}")
        adapters[channel] = module
    return adapters


_ADAPTERS = _discover()


def channels() -> list[Channel]:
    """The channels that have an adapter, in the enum's order."""
    return [channel for channel in Channel if channel in _ADAPTERS]


def parse(channel: Channel, payload: Mapping[str, Any]) -> IngestOrder:
    """Normalise one order payload of `channel`; raises MalformedPayload naming the bad path."""
    adapter = _ADAPTERS.get(channel)
    if adapter is None:
        raise InvalidArgument("channel", f"no adapter for {channel}")
    if not isinstance(payload, Mapping):
        raise MalformedPayload("payload", "must be a JSON object")
    command: IngestOrder = adapter.parse(payload)
    return command


def channel_order_ref(channel: Channel, payload: object) -> str:
    """The channel's order id for a quarantine record, or "" when it cannot be found. Never raises:
    it runs exactly when the payload is broken."""
    try:
        adapter = _ADAPTERS.get(channel)
        if adapter is None:
            return ""
        ref = adapter.order_ref(payload)
        return ref if isinstance(ref, str) else ""
    except Exception:
        return ""
