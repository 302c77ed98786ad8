"""The sandbox's settings: command-line flags, each with an environment variable as its default; the apps'
secrets and the webhook secrets from the environment only (a secret on a command line is visible to anyone
who can list the machine's processes)."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandboxes.channels.behaviour import CHANNELS, ControlError, parse_assignment

PREFIX = "CHANNEL_SANDBOX_"


@dataclass(frozen=True)
class App:
    """A merchant's app on the platform: its key and secret, and the long-lived refresh token its
    authorisation gave (the token every fresh install starts from)."""

    app_key: str
    app_secret: str
    refresh_token: str
    shop_id: str = ""


# the development apps; `omsctl up` hands the same ones to orders (omsctl.stack.CHANNEL_APPS)
DEFAULT_APPS = {
    "taobao": App("12345678", "sandbox-taobao-app-secret", "sandbox-taobao-refresh-token", "2200000000001"),
    "douyin": App(
        "7000000000000000001", "sandbox-douyin-app-secret", "sandbox-douyin-refresh-token", "4463798"
    ),
}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 18030
    seed: int = 0
    apps: dict[str, App] = field(default_factory=lambda: dict(DEFAULT_APPS))
    # pushes go to `<push_url>/<channel>` (the gateway's POST /v1/webhooks/channels/{sender})
    push_url: str | None = None
    # the gateway's WEBHOOK_SECRETS shape: {"channel/taobao": "<base64>", …}
    webhook_secrets: dict[str, bytes] = field(default_factory=dict)
    push_timeout_seconds: float = 5.0
    assignments: tuple[tuple[str, str, Any], ...] = ()


def _seed(text: str) -> int:
    if text.strip().lower() == "random":
        return secrets.randbits(63)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer or random, not {text!r}") from None


def apps_from(text: str) -> dict[str, App]:
    """CHANNEL_SANDBOX_APPS: {"taobao": {"app_key", "app_secret", "refresh_token", "shop_id"}, …}."""
    apps = dict(DEFAULT_APPS)
    if not text.strip():
        return apps
    try:
        raw = json.loads(text)
        for channel, app in raw.items():
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r}")
            apps[channel] = App(
                str(app["app_key"]),
                str(app["app_secret"]),
                str(app["refresh_token"]),
                str(app.get("shop_id", "")),
            )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{PREFIX}APPS: {error}") from None
    return apps


def webhook_secrets_from(text: str) -> dict[str, bytes]:
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
        return {
            key.partition("/")[2]: base64.b64decode(value, validate=True)
            for key, value in raw.items()
            if key.startswith("channel/")
        }
    except (ValueError, AttributeError, binascii.Error):
        raise ValueError(
            f"{PREFIX}WEBHOOK_SECRETS must be a JSON object of channel/<sender> → base64"
        ) from None


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env

    def default(name: str, value: str) -> str:
        return env.get(PREFIX + name, value)

    parser = argparse.ArgumentParser(
        prog="python -m sandboxes.channels",
        description="Channel sandbox: Taobao (TOP) and Douyin shop order APIs, OAuth tokens and pushes.",
    )
    parser.add_argument("--host", default=default("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(default("PORT", "18030")))
    parser.add_argument("--seed", type=_seed, default=_seed(default("SEED", "0")))
    parser.add_argument(
        "--push-url",
        default=default("PUSH_URL", "") or None,
        help="where new orders are pushed: <push-url>/<channel> (the gateway's /v1/webhooks/channels)",
    )
    parser.add_argument(
        "--push-timeout-seconds", type=float, default=float(default("PUSH_TIMEOUT_SECONDS", "5"))
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CHANNEL.SWITCH=VALUE",
        help="a misbehaviour switch, e.g. taobao.latency_ms=50 or all.failure_rate=0.05 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        assignments = tuple(parse_assignment(text) for text in args.set)
    except ControlError as error:
        parser.error(str(error))
    try:
        apps = apps_from(env.get(PREFIX + "APPS", ""))
        hooks = webhook_secrets_from(env.get(PREFIX + "WEBHOOK_SECRETS", ""))
    except ValueError as error:
        parser.error(str(error))
    return Settings(
        host=args.host,
        port=args.port,
        seed=args.seed,
        apps=apps,
        push_url=args.push_url.rstrip("/") if args.push_url else None,
        webhook_secrets=hooks,
        push_timeout_seconds=args.push_timeout_seconds,
        assignments=assignments,
    )
