"""Channel health rules with an injected clock: silence within business hours, token refresh, windows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

from services.orders.domain.channel_health import (
    MIB,
    AlertKind,
    ApiStats,
    BusinessHours,
    Call,
    Reading,
    Thresholds,
    TokenState,
    api_stats,
    open_alerts,
    percentile,
    poll_window,
    recent,
    refresh_at,
    silent,
    token_state,
)

SHANGHAI = timezone(timedelta(hours=8))
HOURS = BusinessHours(time(9), time(22), SHANGHAI)
TEN_MINUTES = timedelta(minutes=10)


def beijing(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def test_a_channel_quiet_for_ten_minutes_within_business_hours_is_silent() -> None:
    last = beijing(14, 0)
    assert not silent(last, beijing(8), beijing(14, 9), TEN_MINUTES, HOURS)
    assert silent(last, beijing(8), beijing(14, 10), TEN_MINUTES, HOURS)


def test_a_channel_quiet_outside_business_hours_is_not_silent() -> None:
    assert not silent(beijing(12), beijing(8), beijing(23, 30), TEN_MINUTES, HOURS)
    assert not silent(beijing(12), beijing(8), beijing(8, 59), TEN_MINUTES, HOURS)


def test_quiet_time_before_the_day_opens_does_not_count() -> None:
    last_night = beijing(21, 50, day=1)
    assert not silent(last_night, beijing(8, day=1), beijing(9, 5), TEN_MINUTES, HOURS)
    assert silent(last_night, beijing(8, day=1), beijing(9, 10), TEN_MINUTES, HOURS)


def test_a_channel_just_connected_is_given_the_whole_interval() -> None:
    assert not silent(None, beijing(15), beijing(15, 9), TEN_MINUTES, HOURS)
    assert silent(None, beijing(15), beijing(15, 10), TEN_MINUTES, HOURS)


def test_business_hours_may_span_midnight() -> None:
    night = BusinessHours(time(22), time(6), SHANGHAI)
    assert night.opened_at(beijing(2, day=3)) == beijing(22, day=2)
    assert night.opened_at(beijing(23)) == beijing(22)
    assert night.opened_at(beijing(12)) is None


def test_a_day_long_token_is_refreshed_when_a_tenth_of_its_life_is_left() -> None:
    expires = beijing(12)
    assert refresh_at(expires, timedelta(days=1)) == expires - timedelta(hours=2, minutes=24)


def test_an_hour_long_token_is_refreshed_thirty_minutes_ahead_and_a_short_one_halfway() -> None:
    expires = beijing(12)
    assert refresh_at(expires, timedelta(hours=1)) == expires - timedelta(minutes=30)
    assert refresh_at(expires, timedelta(seconds=20)) == expires - timedelta(seconds=10)


def test_token_states_follow_the_clock() -> None:
    life, expires = timedelta(hours=1), beijing(12)
    assert token_state(None, life, beijing(10), False) is TokenState.MISSING
    assert token_state(None, life, beijing(10), True) is TokenState.REFRESH_FAILED
    assert token_state(expires, life, beijing(11, 29), False) is TokenState.VALID
    assert token_state(expires, life, beijing(11, 30), False) is TokenState.REFRESH_DUE
    assert token_state(expires, life, beijing(11, 40), True) is TokenState.REFRESH_FAILED
    assert token_state(expires, life, beijing(12), False) is TokenState.EXPIRED


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) is None


def test_the_window_keeps_recent_calls_only() -> None:
    now = beijing(12)
    calls = [Call(now - timedelta(minutes=minutes), 10) for minutes in (90, 59, 1)]
    assert [call.at for call in recent(calls, now, timedelta(hours=1))] == [calls[1].at, calls[2].at]
    assert len(recent(calls, now, timedelta(hours=2), limit=2)) == 2


def test_api_stats_count_errors_by_code() -> None:
    now = beijing(12)
    stats = api_stats([Call(now, 100), Call(now, 300, "15"), Call(now, 200, "15"), Call(now, 50, "27")])
    assert (stats.calls, stats.errors, stats.error_rate) == (4, 3, 0.75)
    assert stats.error_codes == {"15": 2, "27": 1}
    assert (stats.latency_p50_ms, stats.latency_p99_ms) == (100, 300)


def test_thresholds() -> None:
    limits = Thresholds()
    assert not limits.payload_growing(0.75 * MIB)
    assert limits.payload_growing(0.75 * MIB + 1)
    assert not limits.payload_growing(None)
    assert not limits.error_spike(ApiStats(4, 4, None, None, {}))
    assert limits.error_spike(ApiStats(5, 1, None, None, {}))
    assert not limits.error_spike(ApiStats(6, 1, None, None, {}))


def test_open_alerts_name_every_condition() -> None:
    now = beijing(15)
    reading = Reading(
        last_order_at=beijing(14),
        watched_since=beijing(8),
        token=TokenState.EXPIRED,
        api=ApiStats(10, 5, 10, 20, {"15": 5}),
        payload_p99_bytes=900_000,
    )
    assert open_alerts(reading, now, HOURS, Thresholds()) == {
        AlertKind.SILENT,
        AlertKind.TOKEN_EXPIRED,
        AlertKind.PAYLOAD_GROWING,
        AlertKind.ERROR_SPIKE,
    }
    healthy = Reading(beijing(14, 58), beijing(8), TokenState.VALID, ApiStats(10, 0, 10, 20, {}), 2_000)
    assert open_alerts(healthy, now, HOURS, Thresholds()) == frozenset()


def test_poll_windows_overlap_and_are_at_most_a_day_long() -> None:
    now, overlap = beijing(12), timedelta(minutes=1)
    assert poll_window(beijing(11), now, overlap, timedelta(hours=1), timedelta(days=1)) == (
        beijing(10, 59),
        now,
    )
    start, end = poll_window(None, now, overlap, timedelta(days=3), timedelta(days=1))
    assert (start, end) == (now - timedelta(days=3, minutes=1), now - timedelta(days=2, minutes=1))
