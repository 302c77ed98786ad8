"""Orders service settings, from the environment only."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta, timezone
from pathlib import Path

from services.kit.config import CommonSettings, InvalidSetting, integer, number, optional, required
from services.kit.sealing import KeyRing, KeyRingError
from services.orders import sla_rules, status_rules
from services.orders.channel_settings import ChannelSettings
from services.orders.domain import anchor
from services.orders.domain.payments import DEFAULT_SELF_RUN_PROVIDERS
from services.orders.domain.sla import InvalidSla, SlaBook

DEFAULT_PORT = 50051
_CLOCK = re.compile(r"^(\d{2}):(\d{2})([+-])(\d{2}):(\d{2})$")
_PROVIDER = re.compile(r"^[a-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    routing_address: str
    inventory_address: str
    keys: KeyRing
    rules: anchor.RuleBook
    rules_file: Path
    payment_tolerance: timedelta
    retry_attempts: int
    retry_delay: timedelta
    step_lease: timedelta
    step_deadline_seconds: float
    outage_patience: timedelta
    outage_backoff_initial: timedelta
    outage_backoff_max: timedelta
    stuck_after: timedelta
    sweep_seconds: float
    process_manager_concurrency: int
    # the process manager's batching: how long a peer call waits for more steps, and its largest batch
    peer_linger_seconds: float
    peer_max_batch: int
    # single ingest calls arriving within this long are stored in one transaction (0: each alone)
    ingest_linger_seconds: float
    reservation_ttl_seconds: int
    drift_report_at: time
    # empty: orders runs without logistics, and its orders stop at ALLOCATED (a warehouse system then
    # moves them on through ReportSourceStatus)
    logistics_address: str = ""
    # an export reads this many orders per short transaction, pausing between chunks (0: none); the
    # pause spares the database a long export's load, and lets tests make an export outlast a deadline
    export_chunk_orders: int = 500
    export_chunk_pause_seconds: float = 0.0
    # the payment providers that collect our own shop's and tills' money; marketplaces collect their own
    self_run_payment_providers: frozenset[str] = DEFAULT_SELF_RUN_PROVIDERS
    # after-sales' policy option: a customer with an overdue ticket has their next order held for review
    hold_for_overdue_tickets: bool = False
    # SLA limits per product category and stage (SLA_RULES_FILE; docs/guards.md)
    sla: SlaBook = field(default_factory=sla_rules.shipped_sla)
    sla_check_seconds: float = 15.0
    # the channels polled for orders and watched for health (services/orders/channel_settings.py)
    channels: ChannelSettings = field(default_factory=ChannelSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            keys = KeyRing.from_settings(
                required(env, "PII_KEYS"), required(env, "PII_ACTIVE_KEY"), required(env, "PII_HASH_KEY")
            )
        except KeyRingError as error:
            raise InvalidSetting(f"PII_KEYS/PII_ACTIVE_KEY/PII_HASH_KEY: {error}") from None
        rules_file = Path(optional(env, "STATUS_RULES_FILE", str(status_rules.DEFAULT_RULES_PATH)))
        try:
            rules = status_rules.load_rules(rules_file.read_text())
        except (OSError, anchor.InvalidRules) as error:
            raise InvalidSetting(f"STATUS_RULES_FILE {rules_file}: {error}") from None
        sla_file = Path(optional(env, "SLA_RULES_FILE", str(sla_rules.DEFAULT_SLA_PATH)))
        try:
            sla = sla_rules.load_sla(sla_file.read_text())
        except (OSError, InvalidSla) as error:
            raise InvalidSetting(f"SLA_RULES_FILE {sla_file}: {error}") from None
        return cls(
            common=CommonSettings.from_env("orders", DEFAULT_PORT, env),
            routing_address=required(env, "ROUTING_SERVICE_ADDR"),
            inventory_address=required(env, "INVENTORY_SERVICE_ADDR"),
            keys=keys,
            rules=rules,
            rules_file=rules_file,
            payment_tolerance=timedelta(seconds=number(env, "PAYMENT_TIME_TOLERANCE_SECONDS", 600)),
            retry_attempts=integer(env, "RETRY_ATTEMPTS", 3),
            retry_delay=timedelta(seconds=number(env, "RETRY_DELAY_SECONDS", 5)),
            step_lease=timedelta(seconds=number(env, "STEP_LEASE_SECONDS", 30)),
            step_deadline_seconds=number(env, "STEP_DEADLINE_SECONDS", 5),
            outage_patience=timedelta(seconds=number(env, "STEP_OUTAGE_PATIENCE_SECONDS", 6 * 3600)),
            outage_backoff_initial=timedelta(seconds=number(env, "STEP_OUTAGE_BACKOFF_SECONDS", 1)),
            outage_backoff_max=timedelta(seconds=number(env, "STEP_OUTAGE_BACKOFF_MAX_SECONDS", 30)),
            stuck_after=timedelta(seconds=number(env, "STUCK_ORDER_AFTER_SECONDS", 120)),
            sweep_seconds=number(env, "STUCK_ORDER_SWEEP_SECONDS", 30),
            process_manager_concurrency=integer(env, "PROCESS_MANAGER_CONCURRENCY", 64),
            peer_linger_seconds=number(env, "PEER_BATCH_LINGER_MS", 3) / 1000,
            peer_max_batch=integer(env, "PEER_BATCH_MAX", 64),
            ingest_linger_seconds=number(env, "INGEST_BATCH_LINGER_MS", 2) / 1000,
            reservation_ttl_seconds=integer(env, "RESERVATION_TTL_SECONDS", 0),
            drift_report_at=parse_clock(optional(env, "DRIFT_REPORT_AT", "02:00+08:00")),
            logistics_address=optional(env, "LOGISTICS_SERVICE_ADDR", "").strip(),
            export_chunk_orders=integer(env, "EXPORT_CHUNK_ORDERS", 500),
            export_chunk_pause_seconds=number(env, "EXPORT_CHUNK_PAUSE_SECONDS", 0),
            self_run_payment_providers=parse_providers(
                optional(env, "SELF_RUN_PAYMENT_PROVIDERS", ",".join(sorted(DEFAULT_SELF_RUN_PROVIDERS)))
            ),
            hold_for_overdue_tickets=flag(env, "HOLD_ORDERS_OF_OVERDUE_TICKETS"),
            sla=sla,
            sla_check_seconds=number(env, "SLA_CHECK_SECONDS", 15),
            channels=ChannelSettings.from_env(env),
        )


def flag(env: Mapping[str, str], name: str) -> bool:
    value = optional(env, name, "false").strip().lower()
    if value not in ("true", "false"):
        raise InvalidSetting(f"setting {name} must be true or false, not {value!r}")
    return value == "true"


def parse_providers(text: str) -> frozenset[str]:
    """`wechat_pay,alipay` → the providers, as webhook senders name them (lower case)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if not _PROVIDER.match(name)]
    if bad or not names:
        raise InvalidSetting(
            "SELF_RUN_PAYMENT_PROVIDERS must list payment providers such as wechat_pay,alipay "
            f"(each 1-32 of a-z 0-9 _ -), not {text!r}"
        )
    return frozenset(names)


def parse_clock(text: str) -> time:
    """`02:00+08:00` → 02:00 in UTC+8, as a timezone-aware time."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise InvalidSetting(f"DRIFT_REPORT_AT must look like 02:00+08:00, not {text!r}")
    hour, minute, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    if int(hour) > 23 or int(minute) > 59 or offset > timedelta(hours=14):
        raise InvalidSetting(f"DRIFT_REPORT_AT is not a valid time: {text!r}")
    return time(int(hour), int(minute), tzinfo=timezone(offset))
