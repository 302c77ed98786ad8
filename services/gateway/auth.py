"""Who is calling: JWT bearer tokens, service-account client credentials and HMAC-signed integration keys.

No network and no wall clock here (`now` is passed in); the only side effect — claiming a request nonce —
goes through a callable the gateway injects (Redis `SET NX EX`). The gateway composes these pieces with
its metadata; authorisation (which role may do what) is the policy's job (`domain/policy.py`).

Every claim is checked once, by the rules of `domain/principal.py`, and turned into the one form the rest
of the platform uses. A token breaking any of them is not a credential we issue, so it is refused as
unauthenticated like a bad signature; services then take the signed assertion's roles and ids as they are.

Every failure raises `AuthError`. Its message is for the log only: the caller always gets a bare
"unauthenticated", so nothing tells an attacker which check failed. No message, repr or chained
exception ever contains key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from services.gateway.domain.principal import (
    CLAIM_ID,
    KINDS,
    ROLES,
    SERVICE_ROLE,
    AuthError,
    Principal,
    check_id,
    check_roles,
    check_times,
    principal_of,
)
from services.gateway.domain.principal import short as _short
from services.kit.config import InvalidSetting

__all__ = [
    "KINDS",
    "ROLES",
    "SERVICE_ROLE",
    "ApiKey",
    "AuthError",
    "AuthSettingsError",
    "JwtSettings",
    "Principal",
    "ServiceAccount",
    "VerifiedTokens",
    "authenticate_client",
    "check_id",
    "check_roles",
    "check_secret",
    "hash_secret",
    "issue_token",
    "parse_api_keys",
    "sign",
    "verify_jwt",
    "verify_signature",
]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | set(EC_ALGORITHMS.values()) | {"EdDSA"}

# RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
MIN_HMAC_KEY_BYTES = 32
MIN_RSA_BITS = 2048
# Bounds the work an unauthenticated caller can make us do before any signature check.
MAX_TOKEN_CHARS = 8192
RESERVED_CLAIMS = frozenset({"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "roles", "kind"})

PBKDF2_ITERATIONS = 100_000
PBKDF2_SALT_BYTES = 16
# A stored hash is configuration, but an absurd iteration count would still turn each login into a stall.
MAX_PBKDF2_ITERATIONS = 10_000_000

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Decimal digits only: int() would also accept " 17", "+17" and "1_7", all of which sign differently.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class AuthSettingsError(InvalidSetting, ValueError):
    """An authentication setting is unusable; names the setting, never the key material.

    An `InvalidSetting` so `settings_or_exit` reports it by name at start-up.
    """


def _pem(value: bytes | str) -> bytes | None:
    raw = value.encode() if isinstance(value, str) else value
    return raw if raw.lstrip().startswith(b"-----BEGIN") else None


def _algorithms_for(key: object) -> frozenset[str]:
    """The algorithms a key can check. Tying each kid to its key's family is what stops algorithm confusion:
    an RSA public key is never handed to HMAC, whatever the token header says."""
    if isinstance(key, bytes):
        return HMAC_ALGORITHMS
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        algorithm = EC_ALGORITHMS.get(key.curve.name)
        return frozenset({algorithm}) if algorithm else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return frozenset({"EdDSA"})
    return frozenset()


def _load_key(kid: str, value: bytes | str, private: bool) -> object:
    what = f"{'JWT_SIGNING_KEYS' if private else 'JWT_KEYS'} key {kid!r}"
    pem = _pem(value)
    if pem is None:
        secret = value.encode() if isinstance(value, str) else bytes(value)
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise AuthSettingsError(f"{what} is an HMAC secret shorter than {MIN_HMAC_KEY_BYTES} bytes")
        return secret
    try:
        key: object = (
            serialization.load_pem_private_key(pem, password=None)
            if private
            else serialization.load_pem_public_key(pem)
        )
    except (ValueError, TypeError):
        # cryptography's message can quote the input, so it is dropped.
        raise AuthSettingsError(f"{what} is not a readable unencrypted PEM key") from None
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise AuthSettingsError(f"{what} is an RSA key shorter than {MIN_RSA_BITS} bits")
    if not _algorithms_for(key):
        raise AuthSettingsError(f"{what} is of an unsupported key type")
    return key


def _public_form(key: object) -> bytes:
    """What a verification key and its signing key have in common, to check that they belong together."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    raise TypeError(f"unsupported key type {type(key).__name__}")


@dataclass(frozen=True)
class JwtSettings:
    """Issuer, audience, the pinned algorithms and the keys by kid.

    Rotation: list the new kid beside the old one, make it active, and drop the old kid once every token
    signed with it has expired (at most `max_lifetime_seconds`).
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    keys: Mapping[str, bytes | str] = field(repr=False)
    active_kid: str
    signing_keys: Mapping[str, bytes | str] = field(repr=False)
    leeway_seconds: int = 30
    max_lifetime_seconds: int = 86400
    _verifiers: Mapping[str, tuple[object, tuple[str, ...]]] = field(init=False, repr=False, compare=False)
    _signer: tuple[object, str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise AuthSettingsError("JWT_ISSUER and JWT_AUDIENCE must not be empty")
        if not self.algorithms:
            raise AuthSettingsError("JWT_ALGORITHMS must name at least one algorithm")
        unsupported = [name for name in self.algorithms if name not in SUPPORTED_ALGORITHMS]
        if unsupported:
            raise AuthSettingsError(
                f"JWT_ALGORITHMS has unsupported {', '.join(map(_short, unsupported))}; "
                f"choose from {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
            )
        if not self.keys:
            raise AuthSettingsError("JWT_KEYS must hold at least one key")
        if self.leeway_seconds < 0 or self.max_lifetime_seconds <= 0:
            raise AuthSettingsError("JWT_LEEWAY_SECONDS must be >= 0 and JWT_MAX_LIFETIME_SECONDS > 0")
        verifiers: dict[str, tuple[object, tuple[str, ...]]] = {}
        for kid, value in self.keys.items():
            if not _KEY_ID.fullmatch(kid):
                raise AuthSettingsError(f"JWT_KEYS kid {_short(kid)} must be 1-64 of A-Z a-z 0-9 . _ -")
            key = _load_key(kid, value, private=False)
            usable = tuple(name for name in self.algorithms if name in _algorithms_for(key))
            if not usable:
                # A key no pinned algorithm can check is a misconfiguration, not something to skip quietly.
                raise AuthSettingsError(f"JWT_KEYS key {kid!r} fits none of JWT_ALGORITHMS")
            verifiers[kid] = (key, usable)
        if self.active_kid not in verifiers:
            raise AuthSettingsError(f"JWT_ACTIVE_KID {_short(self.active_kid)} is not one of JWT_KEYS")
        signer: tuple[object, str] | None = None
        if self.active_kid in self.signing_keys:
            signing_key = _load_key(self.active_kid, self.signing_keys[self.active_kid], private=True)
            verification_key, usable = verifiers[self.active_kid]
            if not hmac.compare_digest(_public_form(signing_key), _public_form(verification_key)):
                raise AuthSettingsError(
                    f"JWT_SIGNING_KEYS key {self.active_kid!r} does not match its JWT_KEYS entry"
                )
            signer = (signing_key, usable[0])
        object.__setattr__(self, "_verifiers", MappingProxyType(verifiers))
        object.__setattr__(self, "_signer", signer)

    @classmethod
    def from_settings(cls, env: Mapping[str, str]) -> JwtSettings:
        """JWT_KEYS is `kid:base64,...`; each value decodes to an HMAC secret or to a PEM public key.
        JWT_SIGNING_KEYS (optional, same form) holds PEM private keys for asymmetric active kids; an HMAC
        kid signs with its own secret."""
        keys = _parse_key_list(env, "JWT_KEYS", required=True)
        signing_keys = {kid: value for kid, value in keys.items() if _pem(value) is None}
        signing_keys.update(_parse_key_list(env, "JWT_SIGNING_KEYS", required=False))
        return cls(
            issuer=env.get("JWT_ISSUER", "").strip() or "oms",
            audience=env.get("JWT_AUDIENCE", "").strip() or "oms-api",
            algorithms=tuple(
                name.strip() for name in (env.get("JWT_ALGORITHMS", "") or "HS256").split(",") if name.strip()
            ),
            keys=keys,
            active_kid=env.get("JWT_ACTIVE_KID", "").strip() or next(iter(keys)),
            signing_keys=signing_keys,
            leeway_seconds=_seconds(env, "JWT_LEEWAY_SECONDS", 30),
            max_lifetime_seconds=_seconds(env, "JWT_MAX_LIFETIME_SECONDS", 86400),
        )


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise AuthSettingsError(f"setting {name} must be a whole number of seconds, got {_short(raw)}")
    return int(raw)


def _decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional (people paste keys from both kinds of tools)."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def _parse_key_list(env: Mapping[str, str], name: str, required: bool) -> dict[str, bytes | str]:
    raw = env.get(name, "").strip()
    if not raw:
        if required:
            raise AuthSettingsError(f"required setting {name} is not set (kid:base64,kid2:base64)")
        return {}
    keys: dict[str, bytes | str] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        kid, separator, encoded = entry.strip().partition(":")
        kid = kid.strip()
        # Only the position and the kid are named: the entry itself may be mostly secret.
        if not separator or not kid or not encoded.strip():
            raise AuthSettingsError(f"setting {name} entry {position} is not kid:base64")
        if kid in keys:
            raise AuthSettingsError(f"setting {name} lists kid {_short(kid)} twice")
        try:
            decoded = _decode_base64(encoded)
        except (binascii.Error, ValueError):
            raise AuthSettingsError(f"setting {name} key {_short(kid)} is not valid base64") from None
        keys[kid] = decoded.decode() if _pem(decoded) is not None else decoded
    return keys


def verify_jwt(token: str, settings: JwtSettings, now: float) -> Principal:
    claims, principal = _verified(token, settings)
    check_times(claims, settings.leeway_seconds, settings.max_lifetime_seconds, now)
    return principal


class VerifiedTokens:
    """Bearer tokens whose signature, kid, algorithm, issuer, audience and claims were verified once,
    with the principal they name. A frontend sends the same token on every call until it expires; its
    signature check (about a fifth of the gateway's own work on a call) is done once, and the times are
    checked against `now` on every call as before. Only tokens that passed are kept, at most
    `max_tokens` (the oldest forgotten first), so nothing a caller sends can grow it past that."""

    def __init__(self, settings: JwtSettings, max_tokens: int = 10_000) -> None:
        self._settings = settings
        self._max_tokens = max_tokens
        self._known: dict[str, tuple[Mapping[str, Any], Principal]] = {}

    def verify(self, token: str, now: float) -> Principal:
        settings = self._settings
        known = self._known.get(token)
        if known is None:
            known = _verified(token, settings)
            if len(self._known) >= self._max_tokens:
                del self._known[next(iter(self._known))]
            self._known[token] = known
        claims, principal = known
        check_times(claims, settings.leeway_seconds, settings.max_lifetime_seconds, now)
        return principal


def _verified(token: str, settings: JwtSettings) -> tuple[Mapping[str, Any], Principal]:
    """Everything about a token but its times: those depend on when it is used."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("token missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise AuthError(f"malformed token header: {error}") from None
    algorithm = header.get("alg")
    # Decided from configuration before any key is touched: the header only picks among what we pinned.
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise AuthError("unsigned token (alg none)")
    if algorithm not in settings.algorithms:
        raise AuthError(f"algorithm {_short(algorithm)} is not pinned")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("token has no kid")
    verifier = settings._verifiers.get(kid)
    if verifier is None:
        raise AuthError(f"unknown kid {_short(kid)}")
    key, usable = verifier
    if algorithm not in usable:
        raise AuthError(f"algorithm {algorithm} does not fit the key of kid {kid!r}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=list(usable),
            audience=settings.audience,
            issuer=settings.issuer,
            # PyJWT would check the times against its own wall clock; we check them below against `now`.
            options={
                "require": ["exp", "iat", "sub", "iss", "aud"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as error:
        raise AuthError(f"invalid token: {type(error).__name__}: {error}") from None
    return claims, principal_of(claims)


def issue_token(
    settings: JwtSettings,
    subject: str,
    roles: Iterable[str],
    now: float,
    ttl_seconds: int = 3600,
    kind: str = "service",
    **claims: str,
) -> str:
    """Signs with the active kid. Extra claims (customer_id, channel, provider) are left out when empty."""
    if settings._signer is None:
        raise ValueError(f"no signing key for the active kid {settings.active_kid!r} (JWT_SIGNING_KEYS)")
    if not subject:
        raise ValueError("subject must not be empty")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(sorted(KINDS))}")
    if not 0 < ttl_seconds <= settings.max_lifetime_seconds:
        raise ValueError(f"ttl_seconds must be between 1 and {settings.max_lifetime_seconds}")
    clashing = RESERVED_CLAIMS & claims.keys()
    if clashing:
        raise ValueError(f"claims may not override {', '.join(sorted(clashing))}")
    # never sign what verify_jwt would refuse
    try:
        roles = check_roles(sorted(set(roles)), kind)
        check_id(subject, "sub", required=True)
        for name, value in claims.items():
            check_id(value, name)
    except AuthError as error:
        raise ValueError(str(error)) from None
    issued = int(now)
    payload: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_hex(16),
        "kind": kind,
        "roles": sorted(set(roles)),
        **{name: value for name, value in claims.items() if value},
    }
    key, algorithm = settings._signer
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": settings.active_kid})  # type: ignore[arg-type]


# --- Service accounts (client credentials) ----------------------------------------------------------------


def _parse_hash(stored: str) -> tuple[int, bytes, bytes] | None:
    scheme, _, rest = stored.partition("$")
    iterations, _, rest = rest.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != "pbkdf2" or not iterations.isdigit() or not 0 < int(iterations) <= MAX_PBKDF2_ITERATIONS:
        return None
    try:
        return int(iterations), base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
    except (binascii.Error, ValueError):
        return None


def hash_secret(secret: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """`pbkdf2$<iterations>$<salt b64>$<hash b64>`; the count is stored so it can be raised later."""
    salt = secrets.token_bytes(PBKDF2_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return f"pbkdf2${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_secret(secret: str, stored: str) -> bool:
    parsed = _parse_hash(stored)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    actual = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


# Hashed against when the client id is unknown, so the answer takes as long as for a known one.
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class ServiceAccount:
    client_id: str
    secret_hash: str = field(repr=False)
    roles: frozenset[str]

    def __post_init__(self) -> None:
        # Caught at start-up: otherwise a mistyped hash would only show up as a client that can never log in.
        if _parse_hash(self.secret_hash) is None:
            raise AuthSettingsError(f"service account {self.client_id!r} has a malformed secret hash")
        if not CLAIM_ID.fullmatch(self.client_id):
            raise AuthSettingsError(
                f"service account {_short(self.client_id)}: client_id must be 1-128 of A-Z a-z 0-9 . _ : @ -"
            )
        try:
            check_roles(sorted(self.roles), "service")
        except AuthError as error:
            raise AuthSettingsError(f"service account {self.client_id!r}: {error}") from None


def check_password(secret: str, stored: str | None) -> bool:
    """A console user's password against the stored hash; an unknown user is hashed against the dummy,
    so the answer takes as long as for a known one."""
    matches = check_secret(secret, stored if stored is not None else _DUMMY_HASH)
    return stored is not None and matches


def authenticate_client(
    accounts: Mapping[str, ServiceAccount], client_id: str, secret: str
) -> ServiceAccount:
    """The client-credentials check; the gateway then calls `issue_token(..., kind="service")`."""
    account = accounts.get(client_id)
    matches = check_secret(secret, account.secret_hash if account else _DUMMY_HASH)
    if account is None or not matches:
        raise AuthError(f"bad client credentials for {_short(client_id)}")
    return account


# --- Integration API keys with HMAC request signatures ----------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    secret: bytes = field(repr=False)
    roles: frozenset[str]
    channel: str = ""
    provider: str = ""


_API_KEY_FIELDS = frozenset({"key_id", "secret", "roles", "channel", "provider"})


def parse_api_keys(text: str) -> dict[str, ApiKey]:
    """The API_KEYS setting: a JSON list of {key_id, secret (base64), roles, channel, provider}."""
    if not text.strip():
        return {}
    try:
        entries = json.loads(text)
    except ValueError:
        raise AuthSettingsError("setting API_KEYS is not valid JSON") from None
    if not isinstance(entries, list):
        raise AuthSettingsError("setting API_KEYS must be a JSON list")
    keys: dict[str, ApiKey] = {}
    for position, entry in enumerate(entries, start=1):
        where = f"API_KEYS entry {position}"
        if not isinstance(entry, dict):
            raise AuthSettingsError(f"{where} is not an object")
        unknown = entry.keys() - _API_KEY_FIELDS
        if unknown:
            # A typo such as "chanel" would otherwise silently widen the key to every channel.
            raise AuthSettingsError(f"{where} has unknown fields {', '.join(sorted(map(_short, unknown)))}")
        key_id = entry.get("key_id")
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise AuthSettingsError(f"{where}: key_id must be 1-64 of A-Z a-z 0-9 . _ -")
        where = f"API_KEYS key {key_id!r}"
        if key_id in keys:
            raise AuthSettingsError(f"{where} is listed twice")
        encoded = entry.get("secret")
        try:
            secret = _decode_base64(encoded) if isinstance(encoded, str) else b""
        except (binascii.Error, ValueError):
            raise AuthSettingsError(f"{where}: secret is not valid base64") from None
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise AuthSettingsError(f"{where}: secret must be at least {MIN_HMAC_KEY_BYTES} bytes")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise AuthSettingsError(f"{where}: roles must be a list of strings")
        channel, provider = entry.get("channel", ""), entry.get("provider", "")
        try:
            # an integration key is never a service account
            checked = check_roles(roles, "integration")
            channel, provider = check_id(channel, "channel").upper(), check_id(provider, "provider")
        except AuthError as error:
            raise AuthSettingsError(f"{where}: {error}") from None
        keys[key_id] = ApiKey(key_id, secret, checked, channel, provider)
    return keys


def canonical_request(method: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def sign(secret: bytes, method: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret, canonical_request(method, timestamp, nonce, body), hashlib.sha256).hexdigest()


async def verify_signature(
    keys: Mapping[str, ApiKey],
    key_id: str,
    timestamp: str,
    nonce: str,
    signature: str,
    method: str,
    body: bytes,
    now: float,
    window_seconds: int,
    claim_nonce: Callable[[str, str, int], Awaitable[bool]],
) -> Principal:
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    key = keys.get(key_id)
    if key is None:
        raise AuthError(f"unknown api key {_short(key_id)}")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise AuthError("malformed timestamp")
    if abs(now - int(timestamp)) > window_seconds:
        raise AuthError("timestamp outside the window")
    if not _NONCE.fullmatch(nonce):
        raise AuthError("malformed nonce")
    expected = sign(key.secret, method, timestamp, nonce, body)
    # Bytes, not str: compare_digest refuses non-ASCII strings, and the caller controls `signature`.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise AuthError(f"bad signature for api key {key_id!r}")
    # Claimed only after the signature holds, so forged requests cannot burn a real client's nonces. The
    # claim outlives every moment the timestamp is still accepted: a timestamp up to a window ahead of now
    # stays acceptable until a window after that.
    if not await claim_nonce(key_id, nonce, 2 * window_seconds):
        raise AuthError(f"replayed nonce for api key {key_id!r}")
    return Principal(
        subject=key_id,
        kind="integration",
        roles=key.roles,
        channel=key.channel,
        provider=key.provider,
        token_id=key_id,
    )
