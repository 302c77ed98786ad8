"""What the carrier clients are given: where each API is, the credentials, the limits, the breaker's
thresholds and where Kuaidi100 pushes to."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.logistics.domain.carriers import ACCOUNTS


@dataclass(frozen=True)
class Credentials:
    sf_partner_id: str
    sf_checkword: str
    sf_monthly_card: str
    kuaidi100_key: str
    kuaidi100_secret: str
    kuaidi100_customer: str
    cainiao_app_key: str
    cainiao_app_secret: str


@dataclass(frozen=True)
class Endpoints:
    """Base URLs: SF's `/std/service`, Kuaidi100's `/label/order` (its e-waybill host), Kuaidi100's
    `/poll` and `/poll/query.do` (its subscription and query host, `kuaidi100_poll`; the e-waybill
    host when empty) and Cainiao's `/router/rest` hang below them."""

    sf: str
    kuaidi100: str
    cainiao: str
    kuaidi100_poll: str = ""


@dataclass(frozen=True)
class BreakerSettings:
    # opens when this share of the last `window` calls failed (with at least `min_calls` seen) …
    failure_ratio: float = 0.5
    window: int = 50
    min_calls: int = 20
    # … and stays open this long before a probe is let through (half open)
    open_seconds: float = 30.0


def _every(value: float) -> dict[str, float]:
    return dict.fromkeys(ACCOUNTS, value)


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 5.0
    # calls in flight per account
    concurrency: int = 20
    # calls per second per account: waybills, and tracking queries
    create_per_s: dict[str, float] = field(default_factory=lambda: _every(100.0))
    query_per_s: dict[str, float] = field(default_factory=lambda: _every(10.0))


@dataclass(frozen=True)
class Pushes:
    """Where Kuaidi100 pushes a subscribed waybill's track (the gateway's carrier webhook) and the salt it
    signs with; without a callback nothing is subscribed and the poll alone follows the parcels."""

    kuaidi100_callback_url: str = ""
    kuaidi100_salt: str = ""


@dataclass(frozen=True)
class CarrierConfig:
    endpoints: Endpoints
    credentials: Credentials
    limits: Limits = field(default_factory=Limits)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    pushes: Pushes = field(default_factory=Pushes)
