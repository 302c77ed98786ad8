"""Console users: the people who sign in to the web console with a password.

A user is a subject, a password stored only as a PBKDF2 hash, the roles a person may hold and, for a
customer, the customer whose orders they are. Signing in gives a token of kind `user` carrying exactly
that, so the console's calls are ordinary API calls under the user's role and row scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.gateway.domain.principal import CLAIM_ID, ROLES
from services.kit.errors import InvalidArgument

# roles held by systems (a service account, a channel's or provider's key, a WMS, a carrier), never a person
SYSTEM_ROLES = frozenset({"service", "channel", "payment_provider", "wms", "carrier"})
PERSON_ROLES = ROLES - SYSTEM_ROLES
MIN_PASSWORD = 10
MAX_PASSWORD = 256


@dataclass(frozen=True)
class ConsoleUser:
    subject: str
    password_hash: str
    roles: frozenset[str]
    customer_id: str = ""


@dataclass(frozen=True)
class NewUser:
    subject: str
    password: str
    roles: frozenset[str]
    customer_id: str


def new_user(subject: str, password: str, roles: Iterable[str], customer_id: str) -> NewUser:
    """The user as asked for, or InvalidArgument naming every wrong field."""
    problems: list[tuple[str, str]] = []
    if not CLAIM_ID.fullmatch(subject):
        problems.append(("subject", "must be 1-128 of A-Z a-z 0-9 . _ : @ -"))
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problems.append(("password", f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"))
    wanted = list(roles)
    unknown = sorted({role for role in wanted if role not in ROLES})
    systems = sorted({role for role in wanted if role in SYSTEM_ROLES})
    if not wanted:
        problems.append(("roles", "at least one role is required"))
    elif unknown:
        problems.append(("roles", f"unknown role {', '.join(r[:32] for r in unknown)}"))
    elif systems:
        problems.append(("roles", f"{', '.join(systems)} is a system's role, not a person's"))
    if "customer" in wanted:
        if not CLAIM_ID.fullmatch(customer_id):
            problems.append(("customer_id", "a customer needs one: 1-128 of A-Z a-z 0-9 . _ : @ -"))
        elif len(set(wanted)) > 1:
            problems.append(("roles", "a customer holds no other role"))
    elif customer_id:
        problems.append(("customer_id", "only a customer has one"))
    if problems:
        raise InvalidArgument.of(problems)
    return NewUser(subject, password, frozenset(wanted), customer_id)
