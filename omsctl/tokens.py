"""`omsctl token`: mint a development JWT with the gateway's own settings (JWT_KEYS, JWT_ACTIVE_KID, ...).

Whoever holds JWT_KEYS can sign tokens anyway; this only spares developers hand-crafting them. A token
with the `service` role is minted of kind `service`, as the gateway's client-credentials exchange issues
it: the gateway refuses the `service` role in a user token.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from services.gateway.tokens import JwtSettings, issue_token


def mint(
    env: Mapping[str, str],
    subject: str,
    roles: list[str],
    ttl_seconds: int,
    customer_id: str = "",
    channel: str = "",
    now: float | None = None,
) -> str:
    settings = JwtSettings.from_settings(env)
    return issue_token(
        settings,
        subject,
        roles,
        time.time() if now is None else now,
        ttl_seconds,
        kind="service" if "service" in roles else "user",
        customer_id=customer_id,
        channel=channel,
    )


def add_arguments(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "token", help="mint a development JWT signed with the active JWT key"
    )
    parser.add_argument("--sub", required=True, help="subject: the user id")
    parser.add_argument(
        "--role",
        action="append",
        default=[],
        dest="roles",
        help="a role; repeat for several (role service mints a service-account token, kind service)",
    )
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--customer", default="", help="customer id, for the customer role")
    parser.add_argument("--channel", default="", help="sales channel, e.g. TAOBAO")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        token = mint(env, args.sub, args.roles, args.ttl, customer_id=args.customer, channel=args.channel)
    except ValueError as error:
        # Settings errors name the setting and never the key, so they are safe to print.
        print(f"token: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0
