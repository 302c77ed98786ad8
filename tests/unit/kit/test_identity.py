from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.kit.config import InvalidSetting, MissingSetting
from services.kit.identity import (
    ASSERTION_HEADER,
    IdentityError,
    IdentitySettings,
    Principal,
    Signer,
    Verifier,
    assertion_in,
    audience_of,
    generate_key,
    parse_trusted_keys,
    private_key,
    public_key_of,
    trusted_keys_json,
)
from tests import identity

ALICE = Principal("alice", "user", frozenset({"cs_agent"}), agent_id="alice")


def signer_at(issuer: str, now: float, kid: str | None = None, key: str | None = None) -> Signer:
    settings = IdentitySettings(
        issuer=issuer,
        signing_kid=kid or identity.kid(issuer),
        signing_key=private_key(key or identity.KEYS[issuer]),
        trusted={},
    )
    return Signer(settings, wall=lambda: now)


def test_a_gateway_assertion_round_trips_every_claim() -> None:
    who = Principal(
        "bob", "channel", frozenset({"channel", "ops"}), "c1", "a1", "TAOBAO", provider="alipay", reveal=True
    )
    token = identity.signer().mint(who, "orders")
    assert identity.verifier().verify(token, "orders") == who


def test_a_service_asserts_itself_and_its_assertion_is_reused_until_shortly_before_expiry() -> None:
    now = [time.time()]
    signer = Signer(identity.settings("orders"), wall=lambda: now[0])
    first = signer.own("routing")
    assert signer.own("routing") == first
    assert signer.own("inventory") != first
    assert identity.verifier().verify(first, "routing") == Principal.of_service("orders")
    now[0] += 50
    assert signer.own("routing") != first


def test_an_expired_assertion_is_refused_beyond_the_leeway() -> None:
    verifier = Verifier(identity.trusted(), leeway_seconds=5)
    just_expired = signer_at("gateway", time.time() - 62).mint(ALICE, "orders")
    assert verifier.verify(just_expired, "orders") == ALICE
    long_expired = signer_at("gateway", time.time() - 70).mint(ALICE, "orders")
    with pytest.raises(IdentityError, match="expired"):
        verifier.verify(long_expired, "orders")


def test_an_assertion_from_the_future_is_refused() -> None:
    token = signer_at("gateway", time.time() + 120).mint(ALICE, "orders")
    with pytest.raises(IdentityError, match="not valid yet"):
        identity.verifier().verify(token, "orders")


def test_an_assertion_signed_by_an_untrusted_key_under_a_trusted_kid_is_refused() -> None:
    with pytest.raises(IdentityError, match="signature"):
        identity.verifier().verify(identity.forged(ALICE, "orders"), "orders")


def test_an_unknown_key_id_is_refused() -> None:
    token = signer_at("gateway", time.time(), kid="elsewhere").mint(ALICE, "orders")
    with pytest.raises(IdentityError, match="unknown key id"):
        identity.verifier().verify(token, "orders")


def test_a_service_key_may_assert_only_itself() -> None:
    orders = identity.signer("orders")
    for claimed in (
        Principal("orders", "service", frozenset({"service", "admin"}), issuer="orders"),
        Principal("gateway", "service", frozenset({"service"}), issuer="orders"),
        Principal("orders", "user", frozenset({"service"}), issuer="orders"),
        Principal("orders", "service", frozenset({"service"}), reveal=True, issuer="orders"),
        Principal("orders", "service", frozenset({"service"}), customer_id="c", issuer="orders"),
    ):
        with pytest.raises(IdentityError, match="may only assert itself"):
            identity.verifier().verify(orders.mint(claimed, "routing"), "routing")


def test_a_service_key_cannot_pass_for_the_gateway() -> None:
    # signed with orders' key but naming the gateway as issuer: the key decides the issuer
    forged = signer_at("gateway", time.time(), kid=identity.kid("orders"), key=identity.KEYS["orders"])
    with pytest.raises(IdentityError, match="issuer"):
        identity.verifier().verify(forged.mint(ALICE, "orders"), "orders")


def test_an_assertion_for_another_service_is_refused_there_even_once_cached() -> None:
    own = identity.signer("orders").own("routing")
    verifier = identity.verifier()
    verifier.verify(own, "routing")
    with pytest.raises(IdentityError, match="audience"):
        verifier.verify(own, "inventory")
    with pytest.raises(IdentityError, match="audience"):
        identity.verifier().verify(identity.signer().mint(ALICE, "routing"), "orders")


def test_a_cached_service_assertion_still_expires() -> None:
    now = [time.time()]
    own = identity.signer("orders").own("routing")
    verifier = Verifier(identity.trusted(), leeway_seconds=5, wall=lambda: now[0])
    verifier.verify(own, "routing")
    now[0] += 66
    with pytest.raises(IdentityError, match="expired"):
        verifier.verify(own, "routing")


def test_a_long_lived_assertion_is_refused_even_when_well_signed() -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": "gateway", "sub": "x", "aud": "orders", "iat": now, "exp": now + 3600, "atp": "user"},
        private_key(identity.KEYS["gateway"]),
        algorithm="EdDSA",
        headers={"kid": identity.kid("gateway")},
    )
    with pytest.raises(IdentityError, match="longer"):
        identity.verifier().verify(token, "orders")


def test_malformed_claims_and_tokens_are_refused() -> None:
    now = int(time.time())
    base = {"iss": "gateway", "sub": "x", "aud": "orders", "iat": now, "exp": now + 30, "atp": "user"}
    for claims in (
        {**base, "atp": "root"},
        {**base, "roles": "admin"},
        {**base, "scope": {"tenant": "x"}},
        {**base, "reveal": "yes"},
        {key: value for key, value in base.items() if key != "sub"},
    ):
        token = jwt.encode(
            claims,
            private_key(identity.KEYS["gateway"]),
            algorithm="EdDSA",
            headers={"kid": identity.kid("gateway")},
        )
        with pytest.raises(IdentityError):
            identity.verifier().verify(token, "orders")
    for garbage in ("", "not-a-token", "a.b.c"):
        with pytest.raises(IdentityError):
            identity.verifier().verify(garbage, "orders")


def test_an_hmac_token_made_with_the_public_key_is_refused() -> None:
    """The classic algorithm confusion: only EdDSA is accepted."""
    now = int(time.time())
    public = base64.b64decode(public_key_of(identity.KEYS["gateway"]))
    token = jwt.encode(
        {"iss": "gateway", "sub": "x", "aud": "orders", "iat": now, "exp": now + 30, "atp": "user"},
        public,
        algorithm="HS256",
        headers={"kid": identity.kid("gateway")},
    )
    with pytest.raises(IdentityError):
        identity.verifier().verify(token, "orders")


def test_during_a_rotation_both_the_old_and_the_new_key_are_trusted() -> None:
    old, new = generate_key(), generate_key()
    trusted = parse_trusted_keys(
        trusted_keys_json([("gw-1", "gateway", public_key_of(old)), ("gw-2", "gateway", public_key_of(new))])
    )
    verifier = Verifier(trusted)
    now = time.time()
    for kid, key in (("gw-1", old), ("gw-2", new)):
        assert verifier.verify(signer_at("gateway", now, kid, key).mint(ALICE, "orders"), "orders") == ALICE
    retired = Verifier({kid: entry for kid, entry in trusted.items() if kid != "gw-1"})
    with pytest.raises(IdentityError, match="unknown key id"):
        retired.verify(signer_at("gateway", now, "gw-1", old).mint(ALICE, "orders"), "orders")


def test_settings_fail_fast_and_name_the_variable() -> None:
    env = identity.env("orders")
    for name in ("IDENTITY_SIGNING_KID", "IDENTITY_SIGNING_KEY", "IDENTITY_TRUSTED_KEYS"):
        with pytest.raises(MissingSetting, match=name):
            IdentitySettings.from_env("orders", {**env, name: ""})
    for name, value in (
        ("IDENTITY_SIGNING_KEY", "short"),
        ("IDENTITY_TRUSTED_KEYS", "[1]"),
        ("IDENTITY_TRUSTED_KEYS", json.dumps({"k": {"issuer": "gateway", "public_key": "AAAA"}})),
        ("IDENTITY_TRUSTED_KEYS", "{}"),
        ("IDENTITY_TTL_SECONDS", "3600"),
    ):
        with pytest.raises(InvalidSetting, match=name):
            IdentitySettings.from_env("orders", {**env, name: value})
    settings = IdentitySettings.from_env("orders", env)
    assert (settings.issuer, settings.signing_kid, settings.ttl_seconds) == ("orders", "test-orders", 60)
    assert "signing_key" not in repr(settings)


def test_generated_keys_are_ed25519_and_their_public_half_is_derived() -> None:
    key = private_key(generate_key())
    assert isinstance(key, Ed25519PrivateKey)
    assert len(base64.b64decode(public_key_of(generate_key()))) == 32


def test_the_audience_is_the_service_a_method_belongs_to() -> None:
    assert audience_of("/oms.orders.v1.OrdersService/GetOrder") == "orders"
    assert audience_of("/oms.inventory.v1.InventoryService/Reserve") == "inventory"
    assert audience_of("/grpc.testing.Echo/Ping") == "grpc.testing.Echo"


def test_two_assertions_in_one_call_are_ambiguous() -> None:
    assert assertion_in([("x", "1"), (ASSERTION_HEADER, "t")]) == "t"
    assert assertion_in(None) == ""
    with pytest.raises(IdentityError, match="more than one"):
        assertion_in([(ASSERTION_HEADER, "t"), (ASSERTION_HEADER, "u")])


def test_the_gateway_signs_a_principal_once_a_second_and_the_assertion_is_the_one_it_would_sign() -> None:
    now = [1_700_000_000.2]
    signer = Signer(identity.settings("gateway"), wall=lambda: now[0])
    fresh = Signer(identity.settings("gateway"), wall=lambda: now[0])
    first = signer.mint(ALICE, "orders")
    now[0] += 0.7  # the same second
    again = signer.mint(ALICE, "orders")
    other_audience = signer.mint(ALICE, "inventory")
    other_principal = signer.mint(Principal("bob", "user", frozenset({"cs_agent"})), "orders")
    now[0] += 0.2  # the next second: iat and exp move on
    later = signer.mint(ALICE, "orders")

    assert again == first == fresh._sign(ALICE, "orders", 1_700_000_000)
    assert other_audience != first and other_principal != first
    assert later != first
    assert jwt.decode(later, options={"verify_signature": False})["iat"] == 1_700_000_001
