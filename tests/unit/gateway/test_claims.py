"""One principal, one form: every claim is checked once at the gateway and never re-parsed downstream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from omsctl import tokens
from services.gateway import gate
from services.gateway.auth import ROLES, AuthError, JwtSettings, issue_token, parse_api_keys, verify_jwt
from services.gateway.domain.policy import POLICY
from services.kit import identity
from tests import identity as test_identity
from tests.unit.gateway.test_auth import NOW, claims, hs_settings, hs_token


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": " "}, "sub"),
        ({"sub": " user-7"}, "sub"),
        ({"sub": "a,b"}, "sub"),
        ({"sub": "x" * 129}, "sub"),
        ({"roles": ["customer"], "customer_id": " "}, "customer_id"),
        ({"roles": ["customer"], "customer_id": "cust-1 "}, "customer_id"),
        ({"roles": ["customer"], "customer_id": 7}, "customer_id"),
        ({"channel": "TAO BAO"}, "channel"),
        ({"roles": ["ADMIN"]}, "roles"),
        ({"roles": ["x,admin"]}, "roles"),
        ({"roles": [" supervisor"]}, "roles"),
        ({"roles": ["admins"]}, "roles"),
        ({"roles": "admin"}, "roles"),
        ({"roles": ["service"]}, "service"),
        ({"roles": ["service"], "kind": "user"}, "service"),
        ({"kind": "integration"}, "kind"),
    ],
)
def test_a_token_with_claims_not_in_the_one_form_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_jwt(hs_token(claims(**changes)), hs_settings(), NOW)


def test_a_service_account_token_carries_the_service_role() -> None:
    token = issue_token(hs_settings(), "svc-1", ["service"], NOW, kind="service")
    principal = verify_jwt(token, hs_settings(), NOW)
    assert (principal.kind, principal.roles) == ("service", frozenset({"service"}))


def test_the_gateway_never_signs_a_token_it_would_refuse() -> None:
    with pytest.raises(ValueError, match="service"):
        issue_token(hs_settings(), "user-7", ["service"], NOW, kind="user")
    with pytest.raises(ValueError, match="roles"):
        issue_token(hs_settings(), "user-7", ["Admin"], NOW, kind="user")
    with pytest.raises(ValueError, match="customer_id"):
        issue_token(hs_settings(), "user-7", ["customer"], NOW, kind="user", customer_id=" x")


def test_the_channel_claim_is_folded_to_upper_case_once_and_asserted_as_is() -> None:
    principal = verify_jwt(hs_token(claims(roles=["channel"], channel="taobao")), hs_settings(), NOW)
    assert principal.channel == "TAOBAO"
    assert gate.asserted(principal).channel == "TAOBAO"


def test_api_keys_with_unknown_or_service_roles_are_a_settings_error() -> None:
    secret = "A" * 44
    for roles in (["Channel"], ["service"], ["channel,admin"]):
        entry = json.dumps([{"key_id": "k1", "secret": secret, "roles": roles}])
        with pytest.raises(ValueError, match="role"):
            parse_api_keys(entry)


def test_every_role_the_policy_names_is_a_known_role() -> None:
    assert {role for rule in POLICY.values() for role in rule.roles} <= ROLES


def test_omsctl_mints_a_service_role_token_of_the_service_kind() -> None:
    env = {"JWT_KEYS": "dev1:" + "A" * 44}
    settings = JwtSettings.from_settings(env)
    assert verify_jwt(tokens.mint(env, "svc-e2e", ["service"], 600, now=NOW), settings, NOW).kind == "service"
    assert verify_jwt(tokens.mint(env, "u-1", ["ops"], 600, now=NOW), settings, NOW).kind == "user"


@pytest.mark.parametrize(
    "who",
    [
        identity.Principal("alice", "user", frozenset({"customer"}), customer_id=" "),
        identity.Principal("alice", "user", frozenset({"cs_agent"}), agent_id=" alice"),
        identity.Principal(" ", "user", frozenset({"cs_agent"}), agent_id="alice"),
        identity.Principal("alice", "user", frozenset({" supervisor"})),
        identity.Principal("alice", "user", frozenset({"x,admin"})),
    ],
)
def test_a_service_refuses_an_assertion_with_padded_or_joined_ids_or_roles(who: identity.Principal) -> None:
    with pytest.raises(identity.IdentityError, match="malformed"):
        test_identity.verifier().verify(test_identity.signer().mint(who, "orders"), "orders")
