"""Who is calling, in the one form the rest of the platform uses, and the checks that make a claim so.

Ids are non-empty strings of a safe charset (nothing to trim, so nothing a later `strip()` could turn
into "no id"), roles come only from `ROLES`, spelled exactly (no case folding, no comma-joined lists),
and the `service` role only in a token of kind `service`. A claim breaking any of these is refused with
`AuthError`, whose message is for the log only and never holds key material.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = frozenset({"user", "service", "integration"})
# what a JWT may say it is: integration principals come only from signed API-key requests
JWT_KINDS = frozenset({"user", "service"})
# every role the policy knows; anything else in a credential is refused, not carried through
ROLES = frozenset(
    {
        "admin",
        "supervisor",
        "ops",
        "cs_agent",
        "customer",
        "warehouse",
        "finance",
        "risk",
        "service",
        "channel",
        "payment_provider",
        "wms",
        "carrier",
    }
)
# only a service account's token (kind "service") may carry this role
SERVICE_ROLE = "service"
# staff roles see every row; anyone else with a scoped role is limited to their rows
UNSCOPED_ROLES = frozenset({"ops", "supervisor", "admin", "service", "finance", "risk", "warehouse"})

# subjects, customer ids, channel and provider names: no spaces, commas or control characters, bounded
CLAIM_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


class AuthError(Exception):
    """The caller is not authenticated. The message is safe to log and is never shown to the caller."""


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str
    roles: frozenset[str]
    customer_id: str = ""
    channel: str = ""
    provider: str = ""
    token_id: str = ""


@dataclass(frozen=True)
class Caller:
    """An admitted call: who, from where, and the request id it came with."""

    principal: Principal
    source_ip: str
    request_id: str


@dataclass(frozen=True)
class Scope:
    """How far a principal reaches, as services are told: all empty for staff and services."""

    customer_id: str = ""
    agent_id: str = ""
    channel: str = ""
    provider: str = ""


def anonymous() -> Principal:
    return Principal(subject="", kind="anonymous", roles=frozenset())


def scope_of(principal: Principal) -> Scope:
    """Staff are unscoped; a customer sees their own rows, an agent their customers', a channel's key
    its channel's, a payment provider's its payments."""
    customer_id = agent_id = ""
    if not principal.roles & UNSCOPED_ROLES:
        if "customer" in principal.roles:
            customer_id = principal.customer_id
        elif "cs_agent" in principal.roles:
            agent_id = principal.subject
    return Scope(customer_id, agent_id, principal.channel, principal.provider)


def is_scoped(principal: Principal) -> bool:
    """Limited to its own rows: a customer, an agent, a channel's key, a payment provider's key."""
    scope = scope_of(principal)
    return bool(scope.customer_id or scope.agent_id or scope.channel or scope.provider)


def short(value: object) -> str:
    """An attacker-chosen value made safe for one log line."""
    return repr(value)[:80]


def check_roles(roles: object, kind: str) -> frozenset[str]:
    """The role claim as the one form used everywhere, or AuthError: a list of known role names, exact
    case, and `service` only for a service account. A bare string (`"x,admin"`) is not a list."""
    if not isinstance(roles, list | tuple | frozenset | set) or not all(isinstance(r, str) for r in roles):
        raise AuthError("claim roles is not a list of strings")
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise AuthError(f"claim roles has unknown {', '.join(map(short, sorted(unknown)))}")
    if SERVICE_ROLE in roles and kind != "service":
        raise AuthError(f"role service in a token of kind {kind!r}")
    return frozenset(roles)


def check_id(value: object, name: str, required: bool = False) -> str:
    """An id claim (sub, customer_id, channel, provider) as is, or AuthError: "" when absent and not
    required, otherwise 1-128 of A-Z a-z 0-9 . _ : @ - (so never blank, padded or comma-joined)."""
    if value is None or value == "":
        if required:
            raise AuthError(f"claim {name} is empty")
        return ""
    if not isinstance(value, str) or not CLAIM_ID.fullmatch(value):
        raise AuthError(f"claim {name} {short(value)} is not 1-128 of A-Z a-z 0-9 . _ : @ -")
    return value


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int in Python; `"exp": true` must not mean 1970-01-01T00:00:01.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"claim {name} is not a number")
    return float(value)


def _optional_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name, "")
    if not isinstance(value, str):
        raise AuthError(f"claim {name} is not a string")
    return value


def check_times(claims: Mapping[str, Any], leeway: int, max_lifetime: int, now: float) -> None:
    """A token's exp, iat and nbf against `now`, with `leeway` seconds each way, and its lifetime
    under the cap: a stolen long-lived token is a standing key, whoever issued it."""
    expires, issued = _number(claims, "exp"), _number(claims, "iat")
    if expires + leeway <= now:
        raise AuthError("token expired")
    if issued - leeway > now:
        raise AuthError("token issued in the future")
    if "nbf" in claims and _number(claims, "nbf") - leeway > now:
        raise AuthError("token not yet valid (nbf)")
    if expires - issued > max_lifetime:
        raise AuthError("token lifetime exceeds the cap")
    if expires <= issued:
        raise AuthError("token expires before it was issued")


def principal_of(claims: Mapping[str, Any]) -> Principal:
    """The principal a verified token's claims name, every claim checked once."""
    kind = _optional_string(claims, "kind") or "user"
    if kind not in JWT_KINDS:
        raise AuthError(f"claim kind {short(kind)} is not one a token may carry")
    return Principal(
        subject=check_id(claims.get("sub"), "sub", required=True),
        kind=kind,
        roles=check_roles(claims.get("roles", []), kind),
        customer_id=check_id(claims.get("customer_id"), "customer_id"),
        # channel names are matched upper-case everywhere (`TAOBAO`); folded here, once
        channel=check_id(claims.get("channel"), "channel").upper(),
        provider=check_id(claims.get("provider"), "provider"),
        token_id=_optional_string(claims, "jti"),
    )
