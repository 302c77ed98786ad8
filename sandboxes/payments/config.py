"""The sandbox's settings: command-line flags, each with an environment variable as its default; the keys
and the APIv3 key from the environment only (a private key on a command line is visible to anyone who
can list the machine's processes). Keys not given are generated at start, and their merchant halves
shown by ``GET /_control/credentials`` (only those: keys that were given are never shown)."""

from __future__ import annotations

import argparse
import os
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from sandboxes.payments.behaviour import ControlError, parse_assignment
from sandboxes.payments.protocols import keys

PREFIX = "PAYMENT_SANDBOX_"


@dataclass(frozen=True)
class Credentials:
    """The provider's side of the merchant accounts: what it checks requests with and signs with."""

    wechat_mchid: str
    wechat_appid: str
    wechat_merchant_serial: str
    wechat_merchant_public_key: rsa.RSAPublicKey
    wechat_platform_serial: str
    wechat_platform_private_key: rsa.RSAPrivateKey
    wechat_apiv3_key: bytes
    alipay_app_id: str
    alipay_app_public_key: rsa.RSAPublicKey
    alipay_private_key: rsa.RSAPrivateKey
    # the merchant halves of keys the sandbox generated itself (PEM or Alipay's base64 line)
    generated: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    credentials: Credentials
    host: str = "127.0.0.1"
    port: int = 18020
    seed: int = 0
    wechat_notify_url: str | None = None
    alipay_notify_url: str | None = None
    # multiplies the providers' notification schedules (1.0: WeChat's 15 s, 15 s, 30 s, 3 m, …)
    notify_schedule_factor: float = 1.0
    notify_timeout_seconds: float = 5.0
    assignments: tuple[tuple[str, str, Any], ...] = ()


def _seed(text: str) -> int:
    if text.strip().lower() == "random":
        return secrets.randbits(63)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer or random, not {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text!r}")
    return value


def credentials_from(env: Mapping[str, str]) -> Credentials:
    """The keys from PAYMENT_SANDBOX_*; ValueError naming the variable when one cannot be read."""
    generated: dict[str, str] = {}

    def text(name: str, default: str) -> str:
        return env.get(PREFIX + name, "").strip() or default

    def public(name: str, pair_name: str, line: bool) -> rsa.RSAPublicKey:
        given = env.get(PREFIX + name, "").strip()
        if given:
            try:
                return keys.load_public_key(given)
            except keys.BadKey as error:
                raise ValueError(f"{PREFIX}{name}: {error}") from None
        private = keys.generate()
        generated[pair_name] = keys.private_line(private) if line else keys.private_pem(private)
        return private.public_key()

    def private(name: str, pair_name: str, line: bool) -> rsa.RSAPrivateKey:
        given = env.get(PREFIX + name, "").strip()
        if given:
            try:
                return keys.load_private_key(given)
            except keys.BadKey as error:
                raise ValueError(f"{PREFIX}{name}: {error}") from None
        key = keys.generate()
        public_key = key.public_key()
        generated[pair_name] = keys.public_line(public_key) if line else keys.public_pem(public_key)
        return key

    apiv3 = env.get(PREFIX + "WECHAT_APIV3_KEY", "")
    if not apiv3:
        apiv3 = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        generated["WECHAT_APIV3_KEY"] = apiv3
    if len(apiv3.encode("utf-8")) != 32:
        raise ValueError(f"{PREFIX}WECHAT_APIV3_KEY: must be 32 bytes (AES-256), got {len(apiv3.encode())}")
    return Credentials(
        wechat_mchid=text("WECHAT_MCHID", "1900000109"),
        wechat_appid=text("WECHAT_APPID", "wxsandbox00000001"),
        wechat_merchant_serial=text("WECHAT_MERCHANT_SERIAL", "5157F09EFDC096DE15EBE81A47057A72SANDBOX"),
        wechat_merchant_public_key=public("WECHAT_MCH_PUBLIC_KEY", "WECHAT_MERCHANT_PRIVATE_KEY", False),
        wechat_platform_serial=text("WECHAT_PLATFORM_SERIAL", "PUB_KEY_ID_0000000000SANDBOX000001"),
        wechat_platform_private_key=private(
            "WECHAT_PLATFORM_PRIVATE_KEY", "WECHAT_PLATFORM_PUBLIC_KEY", False
        ),
        wechat_apiv3_key=apiv3.encode("utf-8"),
        alipay_app_id=text("ALIPAY_APP_ID", "2021000000000001"),
        alipay_app_public_key=public("ALIPAY_APP_PUBLIC_KEY", "ALIPAY_APP_PRIVATE_KEY", True),
        alipay_private_key=private("ALIPAY_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY", True),
        generated=generated,
    )


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env

    def default(name: str, value: str) -> str:
        return env.get(PREFIX + name, value)

    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.payments",
        description="Payment-provider sandbox: WeChat Pay API v3 and Alipay over HTTP.",
    )
    parser.add_argument("--host", default=default("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(default("PORT", "18020")))
    parser.add_argument(
        "--seed",
        type=_seed,
        default=_seed(default("SEED", "0")),
        help="an integer, or `random` for a new one at each start (trade and refund numbers then never "
        "repeat those of a previous run)",
    )
    parser.add_argument(
        "--wechat-notify-url",
        default=default("WECHAT_NOTIFY_URL", "") or None,
        help="the merchant's notify URL: payments, and refunds that name none",
    )
    parser.add_argument(
        "--alipay-notify-url",
        default=default("ALIPAY_NOTIFY_URL", "") or None,
        help="where a payment's notify goes when the control call names none",
    )
    parser.add_argument(
        "--notify-schedule-factor",
        type=_positive,
        default=_positive(default("NOTIFY_SCHEDULE_FACTOR", "1.0")),
        help="multiplies the providers' retry schedules (0.001 turns WeChat's 15 s into 15 ms)",
    )
    parser.add_argument(
        "--notify-timeout-seconds",
        type=_positive,
        default=_positive(default("NOTIFY_TIMEOUT_SECONDS", "5.0")),
        help="how long one notification waits for the merchant's answer",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PROVIDER.SWITCH=VALUE",
        help="a misbehaviour switch, e.g. wechat_pay.latency_ms=50 or all.failure_rate=0.05 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        assignments = tuple(parse_assignment(text) for text in args.set)
    except ControlError as error:
        parser.error(str(error))
    try:
        credentials = credentials_from(env)
    except ValueError as error:
        parser.error(str(error))
    return Settings(
        credentials=credentials,
        host=args.host,
        port=args.port,
        seed=args.seed,
        wechat_notify_url=args.wechat_notify_url,
        alipay_notify_url=args.alipay_notify_url,
        notify_schedule_factor=args.notify_schedule_factor,
        notify_timeout_seconds=args.notify_timeout_seconds,
        assignments=assignments,
    )
