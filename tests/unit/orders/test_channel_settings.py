"""Orders' channel settings: connections, business hours, defaults, and refusals that name the setting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest

from services.kit.config import InvalidSetting
from services.orders.channel_settings import ChannelSettings, parse_connections, parse_hours
from services.orders.domain.model import Channel

ENTRY = {
    "channel": "taobao",
    "api_url": "http://127.0.0.1:18030/",
    "app_key": "12345678",
    "app_secret": "s3cret",
    "refresh_token": "r",
}


def test_defaults_poll_every_five_minutes_and_watch_09_to_22_in_shanghai() -> None:
    settings = ChannelSettings.from_env({})
    assert (settings.connections, settings.poll_interval_s, settings.health_interval_s) == ((), 300, 60)
    assert settings.thresholds.silent_after == timedelta(minutes=10)
    assert settings.hours.is_open(datetime(2026, 12, 2, 1, 30, tzinfo=UTC))  # 09:30 in Shanghai
    assert not settings.hours.is_open(datetime(2026, 12, 2, 14, 30, tzinfo=UTC))  # 22:30


def test_connections_are_read_and_their_channel_normalised() -> None:
    (connection,) = parse_connections(json.dumps([ENTRY]))
    assert (connection.channel, connection.api_url) == (Channel.TAOBAO, "http://127.0.0.1:18030")
    assert "s3cret" not in repr(connection)


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([{**ENTRY, "channel": "JD"}], "cannot poll JD"),
        ([ENTRY, ENTRY], "one connection per channel"),
        ([{**ENTRY, "api_url": "ftp://x"}], "http(s)"),
        ([{"channel": "TAOBAO"}], "KeyError"),
    ],
)
def test_bad_connections_are_refused_without_showing_secrets(
    entries: list[dict[str, str]], problem: str
) -> None:
    with pytest.raises(InvalidSetting, match="CHANNEL_CONNECTIONS") as refused:
        parse_connections(json.dumps(entries))
    assert problem in str(refused.value) and "s3cret" not in str(refused.value)


def test_business_hours_take_a_zone_or_an_offset_and_may_span_midnight() -> None:
    assert parse_hours("08:30-20:00 +07:00").opens == time(8, 30)
    night = parse_hours("22:00-06:00 Asia/Shanghai")
    assert night.is_open(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))  # 02:00 in Shanghai
    with pytest.raises(InvalidSetting, match="BUSINESS_HOURS"):
        parse_hours("9-22")
    with pytest.raises(InvalidSetting, match="unknown time zone"):
        parse_hours("09:00-22:00 Mars/Olympus")


def test_a_non_positive_interval_is_refused_by_name() -> None:
    with pytest.raises(InvalidSetting, match="CHANNEL_POLL_INTERVAL_S"):
        ChannelSettings.from_env({"CHANNEL_POLL_INTERVAL_S": "0"})
