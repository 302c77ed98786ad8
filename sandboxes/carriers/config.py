"""The sandbox's settings: command-line flags, each with an environment variable as its default."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandboxes.carriers.behaviour import ControlError, parse_assignment


@dataclass(frozen=True)
class Credentials:
    sf_partner_id: str = "OMS_SANDBOX"
    sf_checkword: str = "sandbox-sf-checkword"
    kuaidi100_key: str = "sandbox-kuaidi100-key"
    kuaidi100_secret: str = "sandbox-kuaidi100-secret"
    kuaidi100_customer: str = "SANDBOXCUSTOMER"
    cainiao_app_key: str = "12345678"
    cainiao_app_secret: str = "sandbox-cainiao-secret"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 18010
    push_url: str | None = None
    seed: int = 0
    step_seconds: float = 2.0
    push_retry_seconds: float = 1.0
    push_timeout_seconds: float = 5.0
    credentials: Credentials = field(default_factory=Credentials)
    # CARRIER.SWITCH=VALUE, applied at start and again on every reset
    assignments: tuple[tuple[str, str, Any], ...] = ()


def _seed(text: str) -> int:
    if text.strip().lower() == "random":
        return secrets.randbits(63)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer or random, not {text!r}") from None


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CARRIER_SANDBOX_{name}", default)


def parse(argv: Sequence[str] | None = None) -> Settings:
    defaults = Settings()
    creds = Credentials()
    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.carriers",
        description="Carrier sandbox: SF Express, Kuaidi100 (ZTO, YTO, EMS, JD) and Cainiao over HTTP.",
    )
    parser.add_argument("--host", default=_env("HOST", defaults.host))
    parser.add_argument("--port", type=int, default=int(_env("PORT", str(defaults.port))))
    parser.add_argument("--push-url", default=_env("PUSH_URL", "") or None, help="where tracking is pushed")
    parser.add_argument(
        "--seed",
        type=_seed,
        default=_seed(_env("SEED", str(defaults.seed))),
        help="an integer, or `random` for a new one at each start (waybill numbers then never repeat "
        "those a previous run issued, which a platform that keeps its data needs)",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=float(_env("STEP_SECONDS", str(defaults.step_seconds))),
        help="seconds between two tracking nodes of a parcel (the compressed timeline)",
    )
    parser.add_argument(
        "--push-retry-seconds",
        type=float,
        default=float(_env("PUSH_RETRY_SECONDS", str(defaults.push_retry_seconds))),
        help="the unit of the carriers' push back-off",
    )
    parser.add_argument(
        "--push-timeout-seconds",
        type=float,
        default=float(_env("PUSH_TIMEOUT_SECONDS", str(defaults.push_timeout_seconds))),
    )
    for name in (
        "sf_partner_id",
        "sf_checkword",
        "kuaidi100_key",
        "kuaidi100_secret",
        "kuaidi100_customer",
        "cainiao_app_key",
        "cainiao_app_secret",
    ):
        parser.add_argument(f"--{name.replace('_', '-')}", default=_env(name.upper(), getattr(creds, name)))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CARRIER.SWITCH=VALUE",
        help="a misbehaviour switch, e.g. sf.latency_ms=50 or all.failure_rate=0.05 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        assignments = tuple(parse_assignment(text) for text in args.set)
    except ControlError as error:
        parser.error(str(error))
    return Settings(
        host=args.host,
        port=args.port,
        push_url=args.push_url,
        seed=args.seed,
        step_seconds=args.step_seconds,
        push_retry_seconds=args.push_retry_seconds,
        push_timeout_seconds=args.push_timeout_seconds,
        credentials=Credentials(
            sf_partner_id=args.sf_partner_id,
            sf_checkword=args.sf_checkword,
            kuaidi100_key=args.kuaidi100_key,
            kuaidi100_secret=args.kuaidi100_secret,
            kuaidi100_customer=args.kuaidi100_customer,
            cainiao_app_key=args.cainiao_app_key,
            cainiao_app_secret=args.cainiao_app_secret,
        ),
        assignments=assignments,
    )
