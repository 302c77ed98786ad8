"""Who is calling: a signed, short-lived principal assertion (a compact JWT, EdDSA over Ed25519).

The gateway turns credentials into a principal and mints one assertion per forwarded call; a service
calling a peer sends its own. Every service verifies the assertion of every call with public keys
only, so holding a verification key does not let a service mint identities. Only a key trusted for
the gateway's issuer may assert an arbitrary principal; a key trusted for any other issuer (a
service) may only assert that service itself. Keys are named by `kid`, so several can be trusted at
once during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.kit import config
from services.kit.errors import Unauthenticated

ASSERTION_HEADER = "x-oms-assertion"
GATEWAY = "gateway"
ALGORITHM = "EdDSA"
# how many (principal, audience) pairs `Signer.mint` remembers its last assertion for
MINTED_KEPT = 10_000
ACTOR_TYPES = frozenset({"user", "service", "channel"})
SERVICE_ROLE = "service"
# the longest lifetime any verifier accepts, whatever the signer was configured with
MAX_LIFETIME_SECONDS = 60
# a cached own assertion is replaced this long before it expires, so a peer with a clock a little
# ahead still accepts it
REFRESH_MARGIN_SECONDS = 15
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp")
SCOPE_CLAIMS = frozenset({"customer", "agent", "channel", "provider"})


class IdentityError(Exception):
    """An assertion that must be refused; the message says why (it is safe to tell the caller)."""


@dataclass(frozen=True)
class Principal:
    subject: str
    actor_type: str
    roles: frozenset[str]
    customer_id: str = ""
    agent_id: str = ""
    channel: str = ""
    # a payment provider's credential reports that provider's payments only
    provider: str = ""
    # the gateway's audited reveal of personal data (RevealOrder)
    reveal: bool = False
    issuer: str = GATEWAY

    @classmethod
    def of_service(cls, name: str) -> Principal:
        """What a service asserts about itself, and all it may assert."""
        return cls(subject=name, actor_type="service", roles=frozenset({SERVICE_ROLE}), issuer=name)


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    issuer: str
    public_key: Ed25519PublicKey


@dataclass(frozen=True)
class IdentitySettings:
    """This process's signing key (its assertions name `issuer`) and the keys it trusts.

    IDENTITY_SIGNING_KID, IDENTITY_SIGNING_KEY (base64 of the 32-byte raw Ed25519 private key),
    IDENTITY_TRUSTED_KEYS (JSON {kid: {"issuer": name, "public_key": base64 of 32 bytes}}),
    IDENTITY_TTL_SECONDS (default and at most 60), IDENTITY_LEEWAY_SECONDS (clock skew, default 5).
    """

    issuer: str
    signing_kid: str
    signing_key: Ed25519PrivateKey = field(repr=False)
    trusted: Mapping[str, TrustedKey]
    ttl_seconds: int = MAX_LIFETIME_SECONDS
    leeway_seconds: int = 5

    @classmethod
    def from_env(cls, issuer: str, env: Mapping[str, str] | None = None) -> IdentitySettings:
        env = os.environ if env is None else env
        ttl = config.integer(env, "IDENTITY_TTL_SECONDS", MAX_LIFETIME_SECONDS)
        if not 1 <= ttl <= MAX_LIFETIME_SECONDS:
            raise config.InvalidSetting(f"IDENTITY_TTL_SECONDS must be between 1 and {MAX_LIFETIME_SECONDS}")
        leeway = config.integer(env, "IDENTITY_LEEWAY_SECONDS", 5)
        if not 0 <= leeway <= 30:
            raise config.InvalidSetting("IDENTITY_LEEWAY_SECONDS must be between 0 and 30")
        try:
            key = private_key(config.required(env, "IDENTITY_SIGNING_KEY"))
        except ValueError:
            raise config.InvalidSetting("IDENTITY_SIGNING_KEY must be base64 of 32 bytes") from None
        return cls(
            issuer=issuer,
            signing_kid=config.required(env, "IDENTITY_SIGNING_KID"),
            signing_key=key,
            trusted=parse_trusted_keys(config.required(env, "IDENTITY_TRUSTED_KEYS")),
            ttl_seconds=ttl,
            leeway_seconds=leeway,
        )


# ---- keys ----------------------------------------------------------------------------------------


def generate_key() -> str:
    """A new signing key: base64 of the raw 32-byte Ed25519 private key."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def public_key_of(signing_key: str) -> str:
    raw = (
        private_key(signing_key)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw32(text))


def trusted_keys_json(entries: Iterable[tuple[str, str, str]]) -> str:
    """IDENTITY_TRUSTED_KEYS from (kid, issuer, public key) triples."""
    return json.dumps({kid: {"issuer": issuer, "public_key": public} for kid, issuer, public in entries})


def parse_trusted_keys(text: str) -> dict[str, TrustedKey]:
    try:
        raw = json.loads(text)
        trusted = {
            str(kid): TrustedKey(
                str(kid),
                str(entry["issuer"]),
                Ed25519PublicKey.from_public_bytes(_raw32(entry["public_key"])),
            )
            for kid, entry in raw.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise config.InvalidSetting(
            "IDENTITY_TRUSTED_KEYS must be a JSON object {kid: {issuer, public_key (base64 of 32 bytes)}}"
        ) from None
    if not trusted:
        raise config.InvalidSetting("IDENTITY_TRUSTED_KEYS names no key")
    return trusted


def _raw32(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, AttributeError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


# ---- signing -------------------------------------------------------------------------------------


class Assertions(Protocol):
    """What a client channel asks for the assertion of each outgoing call."""

    def assertion(self, audience: str) -> str: ...


class Signer:
    """Mints assertions with this process's key. The gateway mints one per forwarded call; a service
    uses `own()` (cached), since anything else it signed would be refused."""

    def __init__(self, settings: IdentitySettings, wall: Callable[[], float] = time.time) -> None:
        self.issuer = settings.issuer
        self.kid = settings.signing_kid
        self.key = settings.signing_key
        self.ttl = settings.ttl_seconds
        self.wall = wall
        self.headers = {"kid": self.kid}
        self._own: dict[str, tuple[str, float]] = {}
        # the last assertion minted per (principal, audience) and the second it was minted in: within
        # that second a new one would be the same bytes (iat and exp count whole seconds, EdDSA
        # signatures are deterministic), so it is handed out again instead of signed again
        self._minted: dict[tuple[Principal, str], tuple[int, str]] = {}

    def mint(self, principal: Principal, audience: str) -> str:
        now = int(self.wall())
        key = (principal, audience)
        minted = self._minted.get(key)
        if minted is not None and minted[0] == now:
            return minted[1]
        token = self._sign(principal, audience, now)
        if len(self._minted) >= MINTED_KEPT:
            self._minted.clear()
        self._minted[key] = (now, token)
        return token

    def _sign(self, principal: Principal, audience: str, now: int) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal.subject,
            "aud": audience,
            "iat": now,
            "exp": now + self.ttl,
            "atp": principal.actor_type,
            "roles": sorted(principal.roles),
        }
        scope = {
            name: value
            for name, value in (
                ("customer", principal.customer_id),
                ("agent", principal.agent_id),
                ("channel", principal.channel),
                ("provider", principal.provider),
            )
            if value
        }
        if scope:
            claims["scope"] = scope
        if principal.reveal:
            claims["reveal"] = True
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers=self.headers)

    def own(self, audience: str) -> str:
        """This service's assertion about itself for `audience`, re-minted shortly before it expires."""
        now = self.wall()
        cached = self._own.get(audience)
        if cached is not None and now < cached[1]:
            return cached[0]
        token = self.mint(Principal.of_service(self.issuer), audience)
        self._own[audience] = (token, now + max(1, self.ttl - REFRESH_MARGIN_SECONDS))
        return token


class ServiceIdentity:
    """The `Assertions` of a service's own client channels."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def assertion(self, audience: str) -> str:
        return self.signer.own(audience)


def own_identity(settings: IdentitySettings) -> ServiceIdentity:
    """The assertions a service's client channels send: its own, signed with its key."""
    return ServiceIdentity(Signer(settings))


# ---- verifying -----------------------------------------------------------------------------------


class Verifier:
    """Checks signature, key id, issuer, audience, lifetime and what the issuer may assert.

    Services' own assertions are reused for most of a minute, so their verified principals are kept
    (bounded); the gateway's are one per call and are not.
    """

    def __init__(
        self,
        trusted: Mapping[str, TrustedKey],
        leeway_seconds: int = 5,
        wall: Callable[[], float] = time.time,
        cache_size: int = 256,
    ) -> None:
        self.trusted = dict(trusted)
        self.leeway = leeway_seconds
        self.wall = wall
        self.cache_size = cache_size
        self._verified: dict[str, tuple[Principal, str, float]] = {}
        self._jwt = jwt.PyJWT()

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> Verifier:
        return cls(settings.trusted, settings.leeway_seconds)

    def verify(self, token: str, audience: str) -> Principal:
        if not token:
            raise IdentityError("no identity assertion")
        cached = self._verified.get(token)
        if cached is not None:
            principal, cached_audience, expires = cached
            if cached_audience != audience:
                raise IdentityError("assertion is for another audience")
            if self.wall() > expires + self.leeway:
                raise IdentityError("assertion expired")
            return principal
        key = self.trusted.get(_kid_of(token))
        if key is None:
            raise IdentityError("assertion is signed with an unknown key id")
        try:
            claims = self._jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=key.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise IdentityError("assertion expired") from None
        except jwt.ImmatureSignatureError:
            raise IdentityError("assertion is not valid yet (are the clocks in sync?)") from None
        except jwt.InvalidSignatureError:
            raise IdentityError("assertion signature is invalid") from None
        except jwt.InvalidAudienceError:
            raise IdentityError("assertion is for another audience") from None
        except jwt.InvalidIssuerError:
            raise IdentityError("assertion's issuer does not match its key") from None
        except jwt.InvalidTokenError as error:
            raise IdentityError(f"assertion refused: {type(error).__name__}") from None
        principal = _principal(claims, key.issuer)
        if key.issuer != GATEWAY:
            if principal != Principal.of_service(key.issuer):
                raise IdentityError(f"{key.issuer} may only assert itself")
            if len(self._verified) >= self.cache_size:
                self._verified.clear()
            self._verified[token] = (principal, audience, float(claims["exp"]))
        return principal


def _kid_of(token: str) -> str:
    """The header's key id, read without PyJWT's slower parse (PyJWT then checks the whole token,
    header included, against that key's signature)."""
    header = token.partition(".")[0]
    try:
        parsed = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        raise IdentityError("assertion is malformed") from None
    kid = parsed.get("kid") if isinstance(parsed, dict) else None
    return kid if isinstance(kid, str) else ""


def _principal(claims: Mapping[str, Any], issuer: str) -> Principal:
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > MAX_LIFETIME_SECONDS:
        raise IdentityError(f"assertion lives longer than {MAX_LIFETIME_SECONDS} s")
    actor_type, roles = claims.get("atp"), claims.get("roles", [])
    scope, reveal = claims.get("scope", {}), claims.get("reveal", False)
    if (
        actor_type not in ACTOR_TYPES
        or not isinstance(claims["sub"], str)
        or not isinstance(roles, list)
        or not all(isinstance(role, str) for role in roles)
        or not isinstance(scope, dict)
        or not all(isinstance(value, str) for value in scope.values())
        or set(scope) - SCOPE_CLAIMS
        or not isinstance(reveal, bool)
        # the gateway asserts ids and roles in their one form: never blank or padded, so no service
        # has to (or may) trim them into something else
        or not all(_exact(value) for value in (claims["sub"], *roles, *scope.values()))
    ):
        raise IdentityError("assertion has malformed claims")
    return Principal(
        subject=claims["sub"],
        actor_type=actor_type,
        roles=frozenset(roles),
        customer_id=scope.get("customer", ""),
        agent_id=scope.get("agent", ""),
        channel=scope.get("channel", ""),
        provider=scope.get("provider", ""),
        reveal=reveal,
        issuer=issuer,
    )


def _exact(value: str) -> bool:
    return bool(value) and value == value.strip() and "," not in value


def assertion_in(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The one assertion of a call's metadata ("" if none); two are refused as ambiguous."""
    found = [value for key, value in metadata or () if key == ASSERTION_HEADER]
    if len(found) > 1:
        raise IdentityError("more than one identity assertion")
    return found[0] if found and isinstance(found[0], str) else ""


def audience_of(method: str) -> str:
    """The service a method belongs to: `/oms.orders.v1.OrdersService/GetOrder` → `orders`."""
    service = method.lstrip("/").partition("/")[0]
    parts = service.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "oms" else service


# ---- the caller of the current call --------------------------------------------------------------

_current: ContextVar[Principal | None] = ContextVar("oms_principal", default=None)


def bind(principal: Principal) -> Token[Principal | None]:
    return _current.set(principal)


def unbind(token: Token[Principal | None]) -> None:
    _current.reset(token)


def current() -> Principal:
    """The verified principal of the call being handled; a call that was not verified has none."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("a verified identity is required")
    return principal
