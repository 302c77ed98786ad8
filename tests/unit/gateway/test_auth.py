from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from omsctl import tokens
from services.gateway.auth import (
    ApiKey,
    AuthError,
    JwtSettings,
    ServiceAccount,
    VerifiedTokens,
    authenticate_client,
    check_secret,
    hash_secret,
    issue_token,
    parse_api_keys,
    sign,
    verify_jwt,
    verify_signature,
)

NOW = 1_700_000_000
OLD_SECRET = os.urandom(32)
NEW_SECRET = os.urandom(32)
RSA_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE_PEM = RSA_PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
RSA_PUBLIC_PEM = (
    RSA_PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
EC_PRIVATE = ec.generate_private_key(ec.SECP256R1())


def hs_settings(**changes: Any) -> JwtSettings:
    settings = JwtSettings(
        issuer="oms",
        audience="oms-api",
        algorithms=("HS256",),
        keys={"old": OLD_SECRET, "new": NEW_SECRET},
        active_kid="new",
        signing_keys={"old": OLD_SECRET, "new": NEW_SECRET},
    )
    return replace(settings, **changes)


def rs_settings(**changes: Any) -> JwtSettings:
    settings = JwtSettings(
        issuer="oms",
        audience="oms-api",
        algorithms=("RS256",),
        keys={"rsa1": RSA_PUBLIC_PEM},
        active_kid="rsa1",
        signing_keys={"rsa1": RSA_PRIVATE_PEM},
    )
    return replace(settings, **changes)


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "oms",
        "aud": "oms-api",
        "sub": "user-7",
        "iat": NOW - 60,
        "exp": NOW + 600,
        "roles": ["cs_agent", "risk"],
        "customer_id": "cust-1",
        "jti": "jti-1",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def hs_token(payload: dict[str, Any], secret: bytes = NEW_SECRET, kid: str | None = "new") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers)


def b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def handmade_token(header: dict[str, Any], payload: dict[str, Any], hmac_secret: bytes | None) -> str:
    """Built by hand because PyJWT rightly refuses to produce the forgeries these tests need."""
    signing_input = b64url(json.dumps(header).encode()) + b"." + b64url(json.dumps(payload).encode())
    signature = b"" if hmac_secret is None else hmac.new(hmac_secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64url(signature)).decode()


# --- JWT -------------------------------------------------------------------------------------------------


def test_a_valid_hs256_token_gives_its_principal() -> None:
    principal = verify_jwt(hs_token(claims(channel="TAOBAO")), hs_settings(), NOW)
    assert principal.subject == "user-7"
    assert principal.kind == "user"
    assert principal.roles == frozenset({"cs_agent", "risk"})
    assert (principal.customer_id, principal.channel, principal.token_id) == ("cust-1", "TAOBAO", "jti-1")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_token_is_refused(alg: str) -> None:
    token = handmade_token({"alg": alg, "kid": "new", "typ": "JWT"}, claims(), hmac_secret=None)
    with pytest.raises(AuthError, match="alg none"):
        verify_jwt(token, hs_settings(), NOW)


def test_an_hs256_token_is_refused_when_only_rs256_is_pinned() -> None:
    settings = rs_settings(keys={"rsa1": RSA_PUBLIC_PEM}, signing_keys={})
    with pytest.raises(AuthError, match="not pinned"):
        verify_jwt(hs_token(claims(), kid="rsa1"), settings, NOW)


def test_the_rsa_public_key_cannot_be_used_as_an_hmac_secret() -> None:
    forged = handmade_token(
        {"alg": "HS256", "kid": "rsa1", "typ": "JWT"}, claims(), hmac_secret=RSA_PUBLIC_PEM.encode()
    )
    with pytest.raises(AuthError, match="not pinned"):
        verify_jwt(forged, rs_settings(), NOW)
    # Even with HS256 pinned for another kid, the RSA kid only ever verifies with RSA algorithms.
    both = rs_settings(algorithms=("RS256", "HS256"), keys={"rsa1": RSA_PUBLIC_PEM, "new": NEW_SECRET})
    with pytest.raises(AuthError, match="does not fit the key"):
        verify_jwt(forged, both, NOW)


def test_an_rs256_token_signed_with_the_private_key_is_accepted() -> None:
    token = jwt.encode(claims(), RSA_PRIVATE_PEM, algorithm="RS256", headers={"kid": "rsa1"})
    assert verify_jwt(token, rs_settings(), NOW).subject == "user-7"


def test_an_expired_token_is_refused_beyond_the_leeway_and_accepted_within_it() -> None:
    settings = hs_settings(leeway_seconds=30)
    with pytest.raises(AuthError, match="expired"):
        verify_jwt(hs_token(claims(exp=NOW - 30)), settings, NOW)
    assert verify_jwt(hs_token(claims(exp=NOW - 29)), settings, NOW).subject == "user-7"


def test_a_token_not_yet_valid_is_refused() -> None:
    with pytest.raises(AuthError, match="nbf"):
        verify_jwt(hs_token(claims(nbf=NOW + 31)), hs_settings(), NOW)
    with pytest.raises(AuthError, match="future"):
        verify_jwt(hs_token(claims(iat=NOW + 31)), hs_settings(), NOW)
    assert verify_jwt(hs_token(claims(nbf=NOW + 29)), hs_settings(), NOW).subject == "user-7"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "someone-else"}, "Audience"),
        ({"iss": "evil"}, "Issuer"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"exp": True}, "exp"),
        ({"roles": "admin"}, "roles"),
        ({"kind": "superuser"}, "kind"),
    ],
)
def test_a_token_with_wrong_or_missing_claims_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_jwt(hs_token(claims(**changes)), hs_settings(), NOW)


def test_unknown_and_missing_kids_are_refused() -> None:
    with pytest.raises(AuthError, match="unknown kid"):
        verify_jwt(hs_token(claims(), kid="elsewhere"), hs_settings(), NOW)
    with pytest.raises(AuthError, match="no kid"):
        verify_jwt(hs_token(claims(), kid=None), hs_settings(), NOW)


def test_a_token_signed_with_the_wrong_key_is_refused() -> None:
    with pytest.raises(AuthError, match="Signature"):
        verify_jwt(hs_token(claims(), secret=os.urandom(32)), hs_settings(), NOW)
    with pytest.raises(AuthError, match="Signature"):
        verify_jwt(hs_token(claims(), secret=OLD_SECRET, kid="new"), hs_settings(), NOW)


@pytest.mark.parametrize("token", ["", "a.b", "not-a-token", "x" * 9000, "e30.e30.e30"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(AuthError):
        verify_jwt(token, hs_settings(), NOW)


def test_a_rotated_out_key_verifies_while_listed_and_not_after_removal() -> None:
    old_token = hs_token(claims(), secret=OLD_SECRET, kid="old")
    assert verify_jwt(old_token, hs_settings(), NOW).subject == "user-7"
    retired = hs_settings(keys={"new": NEW_SECRET}, signing_keys={"new": NEW_SECRET})
    with pytest.raises(AuthError, match="unknown kid"):
        verify_jwt(old_token, retired, NOW)


def test_tokens_living_longer_than_the_cap_are_refused() -> None:
    settings = hs_settings(max_lifetime_seconds=3600)
    assert verify_jwt(hs_token(claims(iat=NOW - 10, exp=NOW - 10 + 3600)), settings, NOW)
    with pytest.raises(AuthError, match="lifetime"):
        verify_jwt(hs_token(claims(iat=NOW - 10, exp=NOW - 10 + 3601)), settings, NOW)
    with pytest.raises(ValueError, match="ttl_seconds"):
        issue_token(settings, "svc", ["ops"], NOW, ttl_seconds=3601)


@pytest.mark.parametrize("make_settings", [hs_settings, rs_settings])
def test_issued_tokens_round_trip_with_the_active_kid(make_settings: Any) -> None:
    settings = make_settings()
    token = issue_token(settings, "svc-router", ["service"], NOW, ttl_seconds=300, provider="SF", channel="")
    assert jwt.get_unverified_header(token)["kid"] == settings.active_kid
    principal = verify_jwt(token, settings, NOW + 299 + settings.leeway_seconds)
    assert (principal.subject, principal.kind, principal.provider) == ("svc-router", "service", "SF")
    assert principal.roles == frozenset({"service"}) and principal.token_id
    assert "channel" not in jwt.decode(token, options={"verify_signature": False})
    with pytest.raises(AuthError, match="expired"):
        verify_jwt(token, settings, NOW + 300 + settings.leeway_seconds)


def test_an_es256_key_signs_and_verifies() -> None:
    private = EC_PRIVATE.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = EC_PRIVATE.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = rs_settings(
        algorithms=("ES256",), keys={"ec1": public}, active_kid="ec1", signing_keys={"ec1": private}
    )
    assert verify_jwt(issue_token(settings, "svc", [], NOW), settings, NOW).subject == "svc"


def test_issued_tokens_may_not_override_reserved_claims() -> None:
    with pytest.raises(ValueError, match="sub"):
        issue_token(hs_settings(), "svc", [], NOW, sub="admin")


def test_a_signing_key_that_does_not_match_its_kid_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="JWT_SIGNING_KEYS") as raised:
        hs_settings(signing_keys={"new": OLD_SECRET})
    assert OLD_SECRET.hex() not in str(raised.value)


# --- Settings ---------------------------------------------------------------------------------------------


def env_with(**values: str) -> dict[str, str]:
    return {"JWT_KEYS": f"k1:{base64.b64encode(OLD_SECRET).decode()}", **values}


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = JwtSettings.from_settings(env_with())
    assert (settings.issuer, settings.audience, settings.algorithms) == ("oms", "oms-api", ("HS256",))
    assert settings.active_kid == "k1" and settings.keys["k1"] == OLD_SECRET
    assert OLD_SECRET.hex() not in repr(settings) and str(OLD_SECRET) not in repr(settings)
    encoded_rsa = base64.b64encode(RSA_PUBLIC_PEM.encode()).decode()
    mixed = JwtSettings.from_settings(
        env_with(
            JWT_KEYS=f"k1:{base64.b64encode(NEW_SECRET).decode()},rsa1:{encoded_rsa}",
            JWT_ALGORITHMS="HS256, RS256",
            JWT_ACTIVE_KID="rsa1",
            JWT_SIGNING_KEYS=f"rsa1:{base64.b64encode(RSA_PRIVATE_PEM.encode()).decode()}",
        )
    )
    assert verify_jwt(issue_token(mixed, "svc", [], NOW), mixed, NOW).subject == "svc"


SECRET_TEXT = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1hcHBlYXI"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "JWT_KEYS"),
        ({"JWT_KEYS": f"k1{SECRET_TEXT}"}, "JWT_KEYS"),
        ({"JWT_KEYS": f"k1:{SECRET_TEXT}!!"}, "JWT_KEYS"),
        ({"JWT_KEYS": f"k1:{SECRET_TEXT}"}, "JWT_KEYS key 'k1' is an HMAC secret shorter"),
        (env_with(JWT_ACTIVE_KID="k9"), "JWT_ACTIVE_KID"),
        (env_with(JWT_ALGORITHMS="none"), "JWT_ALGORITHMS"),
        (env_with(JWT_ALGORITHMS="RS256"), "JWT_ALGORITHMS"),
        (env_with(JWT_LEEWAY_SECONDS="soon"), "JWT_LEEWAY_SECONDS"),
        (
            env_with(JWT_SIGNING_KEYS=f"k1:{base64.b64encode(b'-----BEGIN junk').decode()}"),
            "JWT_SIGNING_KEYS key 'k1' is not a readable",
        ),
    ],
)
def test_settings_errors_name_the_setting_and_hide_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named) as raised:
        JwtSettings.from_settings(env)
    message = str(raised.value)
    assert SECRET_TEXT not in message and base64.b64encode(OLD_SECRET).decode() not in message
    # A chained decoding error could quote the input in a logged traceback.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__ or raised.value.__context__ is None


# --- Service accounts -------------------------------------------------------------------------------------


def test_client_secrets_are_hashed_with_salt_and_checked() -> None:
    stored = hash_secret("s3cret-value")
    assert stored.startswith("pbkdf2$100000$") and "s3cret-value" not in stored
    assert stored != hash_secret("s3cret-value")
    assert check_secret("s3cret-value", stored)
    assert not check_secret("s3cret-valuf", stored)
    assert not check_secret("s3cret-value", "pbkdf2$x$y$z")


def test_client_credentials_name_the_account_or_fail() -> None:
    accounts = {"router": ServiceAccount("router", hash_secret("right"), frozenset({"service"}))}
    assert authenticate_client(accounts, "router", "right").roles == frozenset({"service"})
    for client_id, secret in [("router", "wrong"), ("nobody", "right")]:
        with pytest.raises(AuthError, match="bad client credentials"):
            authenticate_client(accounts, client_id, secret)
    with pytest.raises(ValueError, match="malformed secret hash"):
        ServiceAccount("router", "sha256:abc", frozenset())


# --- Integration keys -------------------------------------------------------------------------------------

API_SECRET = os.urandom(32)
KEYS = {"taobao-1": ApiKey("taobao-1", API_SECRET, frozenset({"channel-ingest"}), channel="TAOBAO")}
METHOD = "/oms.orders.v1.OrderService/IngestOrder"
BODY = b'{"channelOrderId":"T-1"}'
WINDOW = 300


class NonceStore:
    """Stands in for Redis SET NX EX."""

    def __init__(self) -> None:
        self.claimed: dict[tuple[str, str], int] = {}

    async def claim(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        if (key_id, nonce) in self.claimed:
            return False
        self.claimed[key_id, nonce] = ttl_seconds
        return True


async def check(
    store: NonceStore | None = None,
    *,
    key_id: str = "taobao-1",
    timestamp: str = str(NOW),
    nonce: str = "nonce-0001",
    signature: str | None = None,
    method: str = METHOD,
    body: bytes = BODY,
    now: float = NOW,
) -> Any:
    genuine = sign(API_SECRET, METHOD, str(NOW), "nonce-0001", BODY)
    return await verify_signature(
        KEYS,
        key_id,
        timestamp,
        nonce,
        genuine if signature is None else signature,
        method,
        body,
        now,
        WINDOW,
        (store or NonceStore()).claim,
    )


async def test_a_correctly_signed_request_gives_the_integration_principal() -> None:
    store = NonceStore()
    principal = await check(store)
    assert (principal.subject, principal.kind, principal.channel) == ("taobao-1", "integration", "TAOBAO")
    assert principal.roles == frozenset({"channel-ingest"})
    assert store.claimed == {("taobao-1", "nonce-0001"): 2 * WINDOW}


@pytest.mark.parametrize(
    "tampering",
    [
        {"body": BODY + b" "},
        {"method": "/oms.orders.v1.OrderService/CancelOrder"},
        {"timestamp": str(NOW + 1)},
        {"nonce": "nonce-0002"},
        {"key_id": "unknown"},
    ],
)
async def test_a_tampered_request_is_refused(tampering: dict[str, Any]) -> None:
    with pytest.raises(AuthError):
        await check(**tampering)


@pytest.mark.parametrize("skew", [WINDOW + 1, -WINDOW - 1])
async def test_a_request_outside_the_window_is_refused(skew: int) -> None:
    with pytest.raises(AuthError, match="window"):
        await check(now=NOW + skew)
    assert await check(now=NOW + (WINDOW if skew > 0 else -WINDOW))


@pytest.mark.parametrize("timestamp", ["", " 1700000000", "+1700000000", "1_700_000_000", "1.7e9", "١٧"])
async def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    with pytest.raises(AuthError, match="timestamp"):
        await check(timestamp=timestamp)


async def test_a_replayed_nonce_is_refused() -> None:
    store = NonceStore()
    await check(store)
    with pytest.raises(AuthError, match="replayed"):
        await check(store)


async def test_a_forged_request_does_not_burn_the_nonce() -> None:
    store = NonceStore()
    with pytest.raises(AuthError, match="bad signature"):
        await check(store, signature="0" * 64)
    assert (await check(store)).subject == "taobao-1"


@pytest.mark.parametrize(
    "nonce", ["short", "x" * 65, "nonce with space", "nonce/0001", "nonce\n0001", "nöncé-0001"]
)
async def test_a_malformed_nonce_is_refused(nonce: str) -> None:
    signature = sign(API_SECRET, METHOD, str(NOW), nonce, BODY)
    with pytest.raises(AuthError, match="nonce"):
        await check(nonce=nonce, signature=signature)


@given(st.text(max_size=80))
def test_any_other_signature_is_refused(signature: str) -> None:
    genuine = sign(API_SECRET, METHOD, str(NOW), "nonce-0001", BODY)
    if signature == genuine:
        return
    with pytest.raises(AuthError, match="bad signature"):
        asyncio.run(check(signature=signature))


@given(st.binary(max_size=200))
def test_any_other_body_is_refused(body: bytes) -> None:
    if body == BODY:
        return
    with pytest.raises(AuthError, match="bad signature"):
        asyncio.run(check(body=body))


def test_api_keys_are_parsed_from_json() -> None:
    encoded = base64.b64encode(API_SECRET).decode()
    text = json.dumps([{"key_id": "sf-1", "secret": encoded, "roles": ["carrier"], "provider": "SF"}])
    key = parse_api_keys(text)["sf-1"]
    assert (key.secret, key.roles, key.provider, key.channel) == (API_SECRET, {"carrier"}, "SF", "")
    assert encoded not in repr(key) and parse_api_keys("  ") == {}


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ("[", "not valid JSON"),
        ({"key_id": "a"}, "JSON list"),
        ([{"key_id": "a b", "secret": SECRET_TEXT}], "key_id"),
        ([{"key_id": "a", "secret": SECRET_TEXT + "!"}], "not valid base64"),
        ([{"key_id": "a", "secret": SECRET_TEXT}], "at least 32 bytes"),
        ([{"key_id": "a", "secret": base64.b64encode(API_SECRET).decode(), "chanel": "TAOBAO"}], "chanel"),
        ([{"key_id": "a", "secret": base64.b64encode(API_SECRET).decode(), "roles": "admin"}], "roles"),
    ],
)
def test_api_key_errors_name_the_problem_and_hide_the_secret(entries: Any, problem: str) -> None:
    text = entries if isinstance(entries, str) else json.dumps(entries)
    with pytest.raises(ValueError, match=problem) as raised:
        parse_api_keys(text)
    assert "API_KEYS" in str(raised.value)
    assert SECRET_TEXT not in str(raised.value) and base64.b64encode(API_SECRET).decode() not in str(
        raised.value
    )


# --- omsctl token -----------------------------------------------------------------------------------------


def test_omsctl_mints_user_tokens_the_gateway_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    env = env_with()
    token = tokens.mint(env, "agent-3", ["customer"], 600, customer_id="cust-9", now=NOW)
    principal = verify_jwt(token, JwtSettings.from_settings(env), NOW)
    assert (principal.kind, principal.customer_id, principal.roles) == ("user", "cust-9", {"customer"})

    parser = argparse.ArgumentParser()
    tokens.add_arguments(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["token", "--sub", "ops-1", "--role", "ops", "--role", "admin", "--ttl", "60"])
    assert tokens.run(args, env) == 0
    printed = capsys.readouterr().out.strip()
    claims_ = jwt.decode(printed, options={"verify_signature": False})
    assert (claims_["sub"], claims_["roles"], claims_["exp"] - claims_["iat"]) == (
        "ops-1",
        ["admin", "ops"],
        60,
    )
    assert tokens.run(args, {}) == 2
    assert "JWT_KEYS" in capsys.readouterr().err


def test_a_verified_token_is_not_verified_again_but_its_times_are_checked_on_every_call() -> None:
    verified = VerifiedTokens(hs_settings())
    token = hs_token(claims(exp=NOW + 60))
    past_expiry = NOW + 60 + hs_settings().leeway_seconds

    first = verified.verify(token, NOW)
    second = verified.verify(token, past_expiry - 1)
    with pytest.raises(AuthError, match="expired"):
        verified.verify(token, past_expiry)

    assert first == second == verify_jwt(token, hs_settings(), NOW)
    assert list(verified._known) == [token]


def test_a_refused_token_is_not_remembered_and_the_remembered_ones_are_bounded() -> None:
    verified = VerifiedTokens(hs_settings(), max_tokens=2)
    forged = hs_token(claims(), secret=b"not the key" * 3)
    with pytest.raises(AuthError):
        verified.verify(forged, NOW)
    tokens = [hs_token(claims(sub=f"user-{n}")) for n in range(3)]
    for token in tokens:
        verified.verify(token, NOW)

    assert forged not in verified._known
    assert list(verified._known) == tokens[1:]
    assert verified.verify(tokens[0], NOW).subject == "user-0"  # verified again, in full
