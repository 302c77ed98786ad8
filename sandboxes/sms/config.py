"""The sandbox's settings: command-line flags, each with an SMS_SANDBOX_* variable as its default; the
AccessKey secret from the environment only (a secret on a command line is visible to anyone who can
list the machine's processes)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandboxes.sms.behaviour import ControlError, parse_assignment

PREFIX = "SMS_SANDBOX_"
DEFAULT_ACCESS_KEY_ID = "LTAI5tOmsSandboxSms01"
DEFAULT_ACCESS_KEY_SECRET = "sandbox-sms-access-key-secret"
DEFAULT_SIGN_NAME = "OMS告警"
DEFAULT_TEMPLATE_CODE = "SMS_471250001"
# the variables the registered template (its text below) takes, each at most 35 characters
TEMPLATE_TEXT = "【{sign}】OMS ${severity} 告警 ${kind}，订单 ${order}：${summary}"
TEMPLATE_VARIABLES = ("severity", "kind", "order", "summary")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 18040
    seed: int = 0
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET
    sign_names: tuple[str, ...] = (DEFAULT_SIGN_NAME,)
    template_codes: tuple[str, ...] = (DEFAULT_TEMPLATE_CODE,)
    # how far a request's Timestamp may be from the sandbox's clock (Aliyun: 15 minutes)
    timestamp_window_seconds: int = 900
    assignments: tuple[tuple[str, Any], ...] = ()


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env

    def default(name: str, value: str) -> str:
        return env.get(PREFIX + name, "").strip() or value

    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.sms", description="SMS-provider sandbox: Aliyun SMS SendSms over HTTP."
    )
    parser.add_argument("--host", default=default("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(default("PORT", "18040")))
    parser.add_argument("--seed", type=int, default=int(default("SEED", "0")))
    parser.add_argument("--access-key-id", default=default("ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID))
    parser.add_argument(
        "--sign-names",
        default=default("SIGN_NAMES", DEFAULT_SIGN_NAME),
        help="registered SignNames, comma-separated",
    )
    parser.add_argument(
        "--template-codes",
        default=default("TEMPLATE_CODES", DEFAULT_TEMPLATE_CODE),
        help="registered TemplateCodes, comma-separated",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SWITCH=VALUE",
        help="a misbehaviour switch, e.g. throttle_rate=0.5 or latency_ms=200 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        assignments = tuple(parse_assignment(text) for text in args.set)
    except ControlError as error:
        parser.error(str(error))
    return Settings(
        host=args.host,
        port=args.port,
        seed=args.seed,
        access_key_id=args.access_key_id,
        access_key_secret=default("ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET),
        sign_names=_names(args.sign_names),
        template_codes=_names(args.template_codes),
        assignments=assignments,
    )
