"""Orders' channel-polling and channel-health settings, from the environment (docs/runbook.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.kit.config import InvalidSetting, number, optional
from services.orders.domain.channel_health import BusinessHours, Thresholds
from services.orders.domain.model import Channel

# the channels whose order APIs orders can poll (services/orders/channel_apis.py)
POLLED = frozenset({Channel.TAOBAO, Channel.DOUYIN})
_HOURS = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s+(\S+)$")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):(\d{2})$")
DEFAULT_HOURS = "09:00-22:00 Asia/Shanghai"


@dataclass(frozen=True)
class ConnectionSetting:
    """One entry of CHANNEL_CONNECTIONS: the merchant's app on a channel and its authorisation."""

    channel: Channel
    api_url: str
    app_key: str
    app_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    shop_id: str = ""


@dataclass(frozen=True)
class ChannelSettings:
    connections: tuple[ConnectionSetting, ...] = ()
    poll_interval_s: float = 300.0
    health_interval_s: float = 60.0
    overlap: timedelta = timedelta(seconds=60)
    first_lookback: timedelta = timedelta(hours=1)
    window: timedelta = timedelta(hours=1)
    api_timeout_s: float = 10.0
    hours: BusinessHours = field(
        default_factory=lambda: BusinessHours(time(9), time(22), timezone(timedelta(hours=8)))
    )
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChannelSettings:
        def seconds(name: str, default: float) -> float:
            value = number(env, name, default)
            if value <= 0:
                raise InvalidSetting(f"setting {name} must be above 0, not {value}")
            return value

        return cls(
            connections=parse_connections(optional(env, "CHANNEL_CONNECTIONS", "")),
            poll_interval_s=seconds("CHANNEL_POLL_INTERVAL_S", 300),
            health_interval_s=seconds("CHANNEL_HEALTH_INTERVAL_S", 60),
            overlap=timedelta(seconds=seconds("CHANNEL_POLL_OVERLAP_S", 60)),
            first_lookback=timedelta(seconds=seconds("CHANNEL_POLL_LOOKBACK_S", 3600)),
            window=timedelta(seconds=seconds("CHANNEL_HEALTH_WINDOW_S", 3600)),
            api_timeout_s=seconds("CHANNEL_API_TIMEOUT_S", 10),
            hours=parse_hours(optional(env, "BUSINESS_HOURS", DEFAULT_HOURS)),
            thresholds=Thresholds(
                silent_after=timedelta(seconds=seconds("CHANNEL_SILENT_AFTER_S", 600)),
                payload_share=seconds("CHANNEL_PAYLOAD_ALERT_SHARE", 0.75),
                error_rate=seconds("CHANNEL_ERROR_RATE_ALERT", 0.2),
            ),
        )


def parse_hours(text: str) -> BusinessHours:
    """`09:00-22:00 Asia/Shanghai` (an IANA zone, or an offset such as +08:00)."""
    match = _HOURS.match(text.strip())
    if not match:
        raise InvalidSetting(f"BUSINESS_HOURS must look like {DEFAULT_HOURS}, not {text!r}")
    oh, om, ch, cm, zone_name = match.groups()
    if int(oh) > 23 or int(ch) > 23 or int(om) > 59 or int(cm) > 59:
        raise InvalidSetting(f"BUSINESS_HOURS is not a valid span: {text!r}")
    zone: tzinfo
    offset = _OFFSET.match(zone_name)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        zone = timezone(-delta if sign == "-" else delta)
    else:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidSetting(f"BUSINESS_HOURS: unknown time zone {zone_name!r}") from None
    return BusinessHours(time(int(oh), int(om)), time(int(ch), int(cm)), zone)


def parse_connections(text: str) -> tuple[ConnectionSetting, ...]:
    """CHANNEL_CONNECTIONS: a JSON list of {"channel": "TAOBAO", "api_url", "app_key", "app_secret",
    "refresh_token", "shop_id"}; one per channel."""
    if not text.strip():
        return ()
    try:
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ValueError("must be a JSON list")
        found = tuple(
            ConnectionSetting(
                channel=Channel(str(entry["channel"]).upper()),
                api_url=str(entry["api_url"]).rstrip("/"),
                app_key=str(entry["app_key"]),
                app_secret=str(entry["app_secret"]),
                refresh_token=str(entry["refresh_token"]),
                shop_id=str(entry.get("shop_id", "")),
            )
            for entry in raw
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # the entries hold secrets: only the kind of problem is named
        raise InvalidSetting(f"CHANNEL_CONNECTIONS: {type(error).__name__} in an entry") from None
    unpolled = sorted(c.channel.value for c in found if c.channel not in POLLED)
    if unpolled:
        raise InvalidSetting(
            f"CHANNEL_CONNECTIONS: orders cannot poll {', '.join(unpolled)} "
            f"(it polls {', '.join(sorted(c.value for c in POLLED))})"
        )
    channels = [c.channel for c in found]
    if len(set(channels)) != len(channels):
        raise InvalidSetting("CHANNEL_CONNECTIONS: one connection per channel")
    if any(not c.api_url.startswith(("http://", "https://")) for c in found):
        raise InvalidSetting("CHANNEL_CONNECTIONS: api_url must be an http(s) URL")
    return found
