"""Logistics service settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

import yaml

from services.kit.config import CommonSettings, InvalidSetting, integer, number, optional, required
from services.kit.sealing import KeyRing, KeyRingError
from services.logistics.carriers.config import (
    BreakerSettings,
    CarrierConfig,
    Credentials,
    Endpoints,
    Limits,
    Pushes,
)
from services.logistics.domain import docks
from services.logistics.domain.anomalies import AnomalyRules
from services.logistics.domain.carriers import ACCOUNTS
from services.logistics.domain.tracking import PollPolicy
from services.logistics.domain.waybills import RetryPolicy

DEFAULT_PORT = 50054
DEFAULT_DOCKS_PATH: Final = Path(__file__).resolve().parent / "docks.yaml"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    keys: KeyRing
    carriers: CarrierConfig
    retry: RetryPolicy
    poll: PollPolicy
    anomalies: AnomalyRules
    runner_seconds: float = 1.0
    lease_seconds: float = 120.0
    capacity: int = 400
    poll_every_seconds: float = 60.0
    sweep_every_seconds: float = 600.0
    # tracking pushes written at once; those arriving meanwhile wait and share the next transaction
    push_writers: int = 2
    # the warehouses' dispatch docks: the sender on the labels
    docks: docks.Docks = field(default_factory=docks.Docks)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            keys = KeyRing.from_settings(
                required(env, "PII_KEYS"), required(env, "PII_ACTIVE_KEY"), required(env, "PII_HASH_KEY")
            )
        except KeyRingError as error:
            raise InvalidSetting(f"PII_KEYS/PII_ACTIVE_KEY/PII_HASH_KEY: {error}") from None
        return cls(
            common=CommonSettings.from_env("logistics", DEFAULT_PORT, env),
            keys=keys,
            carriers=carrier_config(env),
            retry=RetryPolicy(
                max_attempts=_at_least(env, "WAYBILL_MAX_ATTEMPTS", RetryPolicy.max_attempts, 1),
                base_seconds=number(env, "WAYBILL_RETRY_BASE_SECONDS", RetryPolicy.base_seconds),
                max_seconds=number(env, "WAYBILL_RETRY_MAX_SECONDS", 300.0),
                jitter=_fraction(env, "WAYBILL_RETRY_JITTER", 0.5),
            ),
            poll=PollPolicy(
                interval=timedelta(seconds=number(env, "TRACKING_POLL_SECONDS", 6 * 3600.0)),
                jitter=_fraction(env, "TRACKING_POLL_JITTER", 0.1),
            ),
            anomalies=AnomalyRules(
                first_scan_within=timedelta(hours=number(env, "ANOMALY_FIRST_SCAN_HOURS", 48.0)),
                update_within=timedelta(hours=number(env, "ANOMALY_NO_UPDATE_HOURS", 48.0)),
                returns_threshold=_at_least(env, "ANOMALY_RETURNS_THRESHOLD", 3, 1),
                returns_window=timedelta(days=number(env, "ANOMALY_RETURNS_WINDOW_DAYS", 30.0)),
            ),
            runner_seconds=number(env, "WAYBILL_RUNNER_SECONDS", 1.0),
            lease_seconds=number(env, "WAYBILL_LEASE_SECONDS", 120.0),
            capacity=_at_least(env, "WAYBILL_CAPACITY", 400, 1),
            poll_every_seconds=number(env, "TRACKING_POLL_EVERY_SECONDS", 60.0),
            sweep_every_seconds=number(env, "ANOMALY_SWEEP_SECONDS", 600.0),
            push_writers=_at_least(env, "TRACKING_PUSH_WRITERS", 2, 1),
            docks=load_docks(Path(optional(env, "LOGISTICS_DOCKS_FILE", str(DEFAULT_DOCKS_PATH)))),
        )


def load_docks(path: Path) -> docks.Docks:
    try:
        return docks.parse(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, docks.InvalidDocks) as error:
        raise InvalidSetting(f"LOGISTICS_DOCKS_FILE {path}: {error}") from None


def _at_least(env: Mapping[str, str], name: str, default: int, least: int) -> int:
    value = integer(env, name, default)
    if value < least:
        raise InvalidSetting(f"setting {name} must be at least {least}, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = number(env, name, default)
    if not 0 <= value < 1:
        raise InvalidSetting(f"setting {name} must be at least 0 and below 1, got {value:g}")
    return value


def per_account(env: Mapping[str, str], name: str, default: float) -> dict[str, float]:
    """`sf=50,zto=20` (accounts not named keep the default)."""
    limits = dict.fromkeys(ACCOUNTS, default)
    for entry in filter(None, (part.strip() for part in env.get(name, "").split(","))):
        account, _, value = entry.partition("=")
        if account.strip() not in ACCOUNTS:
            raise InvalidSetting(
                f"setting {name}: unknown carrier {account.strip()!r}; known: {', '.join(ACCOUNTS)}"
            )
        try:
            limits[account.strip()] = float(value)
        except ValueError:
            raise InvalidSetting(f"setting {name}: {entry!r} is not carrier=calls-per-second") from None
        if limits[account.strip()] <= 0:
            raise InvalidSetting(f"setting {name}: {entry!r} must be above 0")
    return limits


def carrier_config(env: Mapping[str, str]) -> CarrierConfig:
    base = optional(env, "CARRIER_API_URL", "")

    def url(name: str) -> str:
        return optional(env, name, "") or base or required(env, name)

    callback = optional(env, "KUAIDI100_CALLBACK_URL", "")
    salt = required(env, "KUAIDI100_PUSH_SALT") if callback else optional(env, "KUAIDI100_PUSH_SALT", "")
    return CarrierConfig(
        endpoints=Endpoints(
            url("SF_API_URL"),
            url("KUAIDI100_API_URL"),
            url("CAINIAO_API_URL"),
            # Kuaidi100 answers subscriptions and queries on its own host (poll.kuaidi100.com)
            kuaidi100_poll=optional(env, "KUAIDI100_POLL_URL", "") or url("KUAIDI100_API_URL"),
        ),
        credentials=Credentials(
            sf_partner_id=required(env, "SF_PARTNER_ID"),
            sf_checkword=required(env, "SF_CHECKWORD"),
            sf_monthly_card=optional(env, "SF_MONTHLY_CARD", ""),
            kuaidi100_key=required(env, "KUAIDI100_KEY"),
            kuaidi100_secret=required(env, "KUAIDI100_SECRET"),
            kuaidi100_customer=required(env, "KUAIDI100_CUSTOMER"),
            cainiao_app_key=required(env, "CAINIAO_APP_KEY"),
            cainiao_app_secret=required(env, "CAINIAO_APP_SECRET"),
        ),
        limits=Limits(
            timeout_seconds=number(env, "CARRIER_TIMEOUT_SECONDS", 5.0),
            concurrency=_at_least(env, "CARRIER_CONCURRENCY", 20, 1),
            create_per_s=per_account(env, "CARRIER_CREATE_LIMITS", 100.0),
            query_per_s=per_account(env, "CARRIER_QUERY_LIMITS", 10.0),
        ),
        breaker=BreakerSettings(
            failure_ratio=number(env, "BREAKER_FAILURE_RATIO", 0.5),
            window=_at_least(env, "BREAKER_WINDOW", 50, 1),
            min_calls=_at_least(env, "BREAKER_MIN_CALLS", 20, 1),
            open_seconds=number(env, "BREAKER_OPEN_SECONDS", 30.0),
        ),
        pushes=Pushes(callback, salt),
    )
