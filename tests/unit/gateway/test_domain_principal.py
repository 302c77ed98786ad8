"""A verified token's claims to one principal: the times, the kind, the roles and the ids, checked once."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.domain.principal import AuthError, check_times, principal_of

NOW = 1_700_000_000.0


def times(**changes: Any) -> dict[str, Any]:
    return {"iat": NOW - 10, "exp": NOW + 600, **changes}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (times(exp=NOW - 31), "expired"),
        (times(iat=NOW + 31), "future"),
        (times(nbf=NOW + 31), "not yet valid"),
        (times(exp=NOW + 90_000), "lifetime"),
        (times(exp=NOW - 20, iat=NOW - 10), "before it was issued"),
        (times(exp=True), "exp is not a number"),
        (times(iat="1700000000"), "iat is not a number"),
    ],
)
def test_a_tokens_times_are_checked_against_now_with_the_leeway(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        check_times(claims, 30, 86400, NOW)


def test_times_within_the_leeway_pass() -> None:
    check_times(times(exp=NOW - 29, iat=NOW - 100), 30, 86400, NOW)
    check_times(times(iat=NOW + 29, nbf=NOW + 29), 30, 86400, NOW)


def test_the_claims_become_the_one_form_of_principal() -> None:
    principal = principal_of(
        {"sub": "agent-7", "roles": ["cs_agent"], "channel": "taobao", "jti": "t-1", "customer_id": ""}
    )

    assert (principal.subject, principal.kind, principal.roles) == (
        "agent-7",
        "user",
        frozenset({"cs_agent"}),
    )
    assert (principal.channel, principal.customer_id, principal.token_id) == ("TAOBAO", "", "t-1")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "s", "kind": "integration"}, "kind"),
        ({"sub": "s", "kind": 3}, "kind"),
        ({"sub": "s", "jti": 5}, "jti"),
        ({"sub": "", "roles": []}, "sub"),
        ({"sub": "s", "roles": ["service"], "kind": "user"}, "service"),
        ({"sub": "s", "provider": "a b"}, "provider"),
    ],
)
def test_a_claim_outside_the_one_form_is_refused(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        principal_of(claims)
