"""A connected channel's health, as pure rules: business hours and silence, when a token is refreshed,
rolling windows of the channel API's calls, percentiles, and which alerts are open.

Nothing here reads a clock: every rule is told `now`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum

MIB = 1 << 20
# a token is refreshed when this share of its life is left, but never less than the margin before it
# lapses, nor more than half its life ahead (short test lifetimes would otherwise refresh at every tick)
REFRESH_SHARE = 0.1
REFRESH_MARGIN = timedelta(minutes=30)
# the API calls kept per channel for the rolling window (a poll every 5 minutes makes a few an hour)
MAX_CALLS = 500


class TokenState(StrEnum):
    VALID = "VALID"
    REFRESH_DUE = "REFRESH_DUE"
    # the last refresh was refused or failed; the token still works until it lapses
    REFRESH_FAILED = "REFRESH_FAILED"
    EXPIRED = "EXPIRED"
    # no access token yet (a new connection, before its first refresh)
    MISSING = "MISSING"


class AlertKind(StrEnum):
    SILENT = "channel_silent"
    TOKEN_EXPIRED = "channel_token_expired"
    PAYLOAD_GROWING = "channel_payload_growing"
    ERROR_SPIKE = "channel_error_spike"


SEVERITIES = {
    AlertKind.SILENT: "high",
    AlertKind.TOKEN_EXPIRED: "critical",
    AlertKind.PAYLOAD_GROWING: "high",
    AlertKind.ERROR_SPIKE: "medium",
}


@dataclass(frozen=True)
class BusinessHours:
    """The span of each day when a channel is expected to send orders; `closes` before `opens` spans
    midnight (22:00-06:00)."""

    opens: time
    closes: time
    zone: tzinfo

    def opened_at(self, at: datetime) -> datetime | None:
        """When the span that `at` falls in opened, or None outside business hours."""
        local = at.astimezone(self.zone)
        today = datetime.combine(local.date(), self.opens, tzinfo=self.zone)
        clock = local.time().replace(tzinfo=None)
        if self.opens <= self.closes:
            return today if self.opens <= clock < self.closes else None
        if clock >= self.opens:
            return today
        if clock < self.closes:
            return today - timedelta(days=1)
        return None

    def is_open(self, at: datetime) -> bool:
        return self.opened_at(at) is not None


def silent(
    last_order_at: datetime | None,
    watched_since: datetime,
    now: datetime,
    after: timedelta,
    hours: BusinessHours,
) -> bool:
    """No order for `after` within business hours. Quiet time before the day's opening does not count,
    nor time before the channel was connected: at 09:05 a channel silent since last night is not late."""
    opened = hours.opened_at(now)
    if opened is None:
        return False
    quiet_since = max(moment for moment in (last_order_at, watched_since, opened) if moment is not None)
    return now - quiet_since >= after


def refresh_at(expires_at: datetime, lifetime: timedelta) -> datetime:
    lead = min(max(lifetime * REFRESH_SHARE, REFRESH_MARGIN), lifetime / 2)
    return expires_at - lead


def token_state(
    expires_at: datetime | None, lifetime: timedelta, now: datetime, refresh_failed: bool
) -> TokenState:
    if expires_at is None:
        return TokenState.REFRESH_FAILED if refresh_failed else TokenState.MISSING
    if now >= expires_at:
        return TokenState.EXPIRED
    if refresh_failed:
        return TokenState.REFRESH_FAILED
    if now >= refresh_at(expires_at, lifetime):
        return TokenState.REFRESH_DUE
    return TokenState.VALID


def refresh_due(state: TokenState, refused: bool = False) -> bool:
    """A refresh the platform refused is not sent again (the same dead grant would only add API errors
    and an error-spike alert); a new refresh token in the settings clears the refusal."""
    return state is not TokenState.VALID and not refused


@dataclass(frozen=True)
class Call:
    """One call to the channel's API: when, how long it took, and the platform's error code ("" when
    it answered)."""

    at: datetime
    latency_ms: int
    error: str = ""


def recent(calls: Iterable[Call], now: datetime, window: timedelta, limit: int = MAX_CALLS) -> list[Call]:
    """The calls within the window, oldest first, at most the newest `limit`."""
    kept = sorted((call for call in calls if now - window < call.at <= now), key=lambda call: call.at)
    return kept[-limit:]


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` 0.5 for p50, 0.99 for p99); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class ApiStats:
    calls: int
    errors: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    error_codes: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def api_stats(calls: Sequence[Call]) -> ApiStats:
    latencies = [call.latency_ms for call in calls]
    codes = Counter(call.error for call in calls if call.error)
    return ApiStats(
        calls=len(calls),
        errors=sum(codes.values()),
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p99_ms=percentile(latencies, 0.99),
        error_codes=dict(codes),
    )


@dataclass(frozen=True)
class Thresholds:
    silent_after: timedelta = timedelta(minutes=10)
    # a payload whose p99 passes this share of the receiver's limit is alerted before it breaks
    payload_share: float = 0.75
    payload_limit_bytes: int = MIB
    # an error spike: at least this share of at least `min_calls` calls in the window failed
    error_rate: float = 0.2
    min_calls: int = 5

    def payload_growing(self, p99_bytes: float | None) -> bool:
        return p99_bytes is not None and p99_bytes > self.payload_share * self.payload_limit_bytes

    def error_spike(self, stats: ApiStats) -> bool:
        return stats.calls >= self.min_calls and stats.error_rate >= self.error_rate


@dataclass(frozen=True)
class Reading:
    """What is known of one channel at `now`."""

    last_order_at: datetime | None
    watched_since: datetime
    token: TokenState
    api: ApiStats
    payload_p99_bytes: float | None


def open_alerts(
    reading: Reading, now: datetime, hours: BusinessHours, limits: Thresholds
) -> frozenset[AlertKind]:
    found = set()
    if silent(reading.last_order_at, reading.watched_since, now, limits.silent_after, hours):
        found.add(AlertKind.SILENT)
    if reading.token in (TokenState.EXPIRED, TokenState.REFRESH_FAILED):
        found.add(AlertKind.TOKEN_EXPIRED)
    if limits.payload_growing(reading.payload_p99_bytes):
        found.add(AlertKind.PAYLOAD_GROWING)
    if limits.error_spike(reading.api):
        found.add(AlertKind.ERROR_SPIKE)
    return frozenset(found)


def poll_window(
    cursor: datetime | None, now: datetime, overlap: timedelta, first_lookback: timedelta, max_span: timedelta
) -> tuple[datetime, datetime]:
    """The next modified-time window to ask for: from the cursor (less the overlap, so an order changed
    while the last poll ran is not missed) to now, at most `max_span` long (Taobao answers one day)."""
    start = (cursor if cursor is not None else now - first_lookback) - overlap
    return start, min(now, start + max_span)


@dataclass
class Connection:
    """A channel orders is connected to: the merchant's app on it, its tokens (in clear here; the store
    seals them), the poll cursor, the rolling window of API calls and the alerts open for it."""

    channel: str
    api_url: str
    app_key: str
    app_secret: str
    refresh_token: str
    connected_at: datetime
    shop_id: str = ""
    access_token: str = ""
    token_expires_at: datetime | None = None
    token_lifetime: timedelta = timedelta(days=1)
    refresh_failed: bool = False
    refresh_error: str = ""
    poll_cursor: datetime | None = None
    last_poll_at: datetime | None = None
    last_poll_error: str = ""
    calls: list[Call] = field(default_factory=list)
    open_alerts: frozenset[str] = frozenset()

    def token(self, now: datetime) -> TokenState:
        return token_state(
            self.token_expires_at if self.access_token else None,
            self.token_lifetime,
            now,
            self.refresh_failed,
        )

    def called(self, call: Call, now: datetime, window: timedelta) -> None:
        self.calls = recent([*self.calls, call], now, window)

    def refreshed(self, access_token: str, refresh_token: str, lifetime: timedelta, now: datetime) -> None:
        self.access_token, self.refresh_token = access_token, refresh_token or self.refresh_token
        self.token_lifetime, self.token_expires_at = lifetime, now + lifetime
        self.refresh_failed, self.refresh_error = False, ""

    def refresh_refused(self, error: str) -> None:
        self.refresh_failed, self.refresh_error = True, error[:500]

    def token_refused(self, now: datetime) -> None:
        """The channel refused the access token: it is expired whatever its expiry said."""
        self.token_expires_at = now
