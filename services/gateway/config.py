"""Gateway settings, from the environment only."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.gateway import auth
from services.gateway.credentials import ThrottleSettings
from services.gateway.domain.alert_records import Route, default_routes, parse_routes
from services.gateway.domain.policy import Klass
from services.gateway.domain.tracking_pushes import PushSecrets
from services.gateway.domain.webhooks import KINDS as WEBHOOK_KINDS
from services.gateway.limits import Limit, LimiterSettings, parse_limits
from services.gateway.provider_notifications import ProviderKeys
from services.gateway.routes import PUBLIC_SERVICES
from services.kit.config import CommonSettings, InvalidSetting, integer, number, optional, required
from services.kit.provider_signing import BadKey, load_public_key

DEFAULT_PORT = 50050
# sized with bench/limiter.py: the last of 200 concurrent checks on a loaded 2-core gateway is answered
# after 0.3–0.5 s (p99), all of it event-loop time, not Redis; pool sizes 64–256 change little
DEFAULT_REDIS_MAX_CONNECTIONS = 128
DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS = 2.0
DEFAULT_LIMITER = LimiterSettings()
DEFAULT_UPLOAD_MAX_BYTES = 64 << 20
# two uploads of the largest size: with 4 open uploads of up to 64 MiB, 256 MiB would never bind
DEFAULT_UPLOAD_QUOTA_BYTES = 128 << 20
# push: per source address; a carrier's push service sends from a few addresses, in bursts after an outage
DEFAULT_LIMITS = (
    "read=50/s:100,write=20/s:40,upload=20/s:200,auth=5/s:10,push=500/s:2000,"
    "role:admin.read=500/s:1000,role:service.write=1000/s:2000,role:service.read=1000/s:2000"
)


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    redis_url: str
    redis_max_connections: int
    redis_socket_timeout_seconds: float
    limiter: LimiterSettings
    upstreams: dict[str, str]
    upstream_deadline_seconds: float
    # a forwarded server stream (an export) without a deadline of its caller's ends after this long
    stream_deadline_seconds: float
    jwt: auth.JwtSettings
    api_keys: dict[str, auth.ApiKey]
    service_accounts: dict[str, auth.ServiceAccount]
    webhook_secrets: dict[str, bytes]
    # SF's push token and Kuaidi100's push salt (carriers' tracking pushes in their own formats)
    push_secrets: PushSecrets
    # what the payment providers' own notifications are checked with (WeChat Pay v3, Alipay)
    provider_keys: ProviderKeys
    signature_window_seconds: int
    limits: dict[str, Limit]
    upload_ttl_seconds: int
    upload_max_bytes: int
    uploads_per_principal: int
    # the bytes a principal's open uploads may declare together
    upload_quota_bytes: int
    audit_retention: timedelta
    alert_env: Mapping[str, str]
    # who each alert record is told to and how it escalates (ALERT_ROUTES, ALERT_ESCALATE_AFTER_S)
    alert_routes: tuple[Route, ...]
    # how often the escalation job looks for due alerts
    alert_escalation_check_seconds: float
    credential_checks: int
    credential_throttle: ThrottleSettings
    watch_streams_per_principal: int
    failed_attempt_window_seconds: float
    # where Envoy's ext_authz asks about direct reads (`edge_authz`); 0: no authoriser, every call
    # goes through the proxy
    authz_port: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            limits = parse_limits(optional(env, "RATE_LIMITS", DEFAULT_LIMITS))
        except ValueError as error:
            raise InvalidSetting(f"RATE_LIMITS: {error}") from None
        # a method class the setting leaves out keeps its default (a class added later needs no edit)
        defaults = parse_limits(DEFAULT_LIMITS)
        limits.update({klass.value: defaults[klass.value] for klass in Klass if klass.value not in limits})
        retention_days = integer(env, "AUDIT_RETENTION_DAYS", 365)
        if retention_days < 180:
            raise InvalidSetting("AUDIT_RETENTION_DAYS must be at least 180 (six months)")
        return cls(
            common=CommonSettings.from_env("gateway", DEFAULT_PORT, env),
            redis_url=required(env, "REDIS_URL"),
            redis_max_connections=integer(env, "REDIS_MAX_CONNECTIONS", DEFAULT_REDIS_MAX_CONNECTIONS),
            redis_socket_timeout_seconds=number(
                env, "REDIS_SOCKET_TIMEOUT_SECONDS", DEFAULT_REDIS_SOCKET_TIMEOUT_SECONDS
            ),
            limiter=_limiter(env),
            upstreams={service: required(env, variable) for service, variable in PUBLIC_SERVICES.items()},
            upstream_deadline_seconds=number(env, "UPSTREAM_DEADLINE_SECONDS", 10.0),
            authz_port=_port(env, "AUTHZ_PORT", 0),
            stream_deadline_seconds=number(env, "STREAM_DEADLINE_SECONDS", 3600.0),
            jwt=_jwt(env),
            api_keys=_api_keys(env),
            service_accounts=_service_accounts(env),
            webhook_secrets=_webhook_secrets(env),
            push_secrets=push_secrets(env),
            provider_keys=provider_keys(env),
            signature_window_seconds=integer(env, "SIGNATURE_WINDOW_SECONDS", 300),
            limits=limits,
            upload_ttl_seconds=integer(env, "UPLOAD_TTL_SECONDS", 3600),
            upload_max_bytes=integer(env, "UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES),
            uploads_per_principal=integer(env, "UPLOADS_PER_PRINCIPAL", 4),
            upload_quota_bytes=_upload_quota(env),
            audit_retention=timedelta(days=retention_days),
            alert_env=dict(env),
            alert_routes=alert_routes(env),
            alert_escalation_check_seconds=_positive(env, "ALERT_ESCALATION_CHECK_SECONDS", 5.0),
            credential_checks=_at_least_one(env, "CREDENTIAL_CHECKS_MAX_CONCURRENT", 2),
            credential_throttle=_throttle(env),
            watch_streams_per_principal=_at_least_one(env, "WATCH_STREAMS_PER_PRINCIPAL", 5),
            failed_attempt_window_seconds=_window(env),
        )


def alert_routes(env: Mapping[str, str]) -> tuple[Route, ...]:
    """ALERT_ROUTES (JSON, see `domain.alert_records.parse_routes`), or the defaults: high and critical
    to ops, escalating to supervisor then admin after ALERT_ESCALATE_AFTER_S (600); the rest to ops."""
    after = _positive(env, "ALERT_ESCALATE_AFTER_S", 600.0)
    text = optional(env, "ALERT_ROUTES", "")
    if not text:
        return default_routes(timedelta(seconds=after))
    try:
        return parse_routes(text, timedelta(seconds=after))
    except ValueError as error:
        raise InvalidSetting(f"ALERT_ROUTES: {error}") from None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = number(env, name, default)
    if value <= 0:
        raise InvalidSetting(f"{name} must be above 0")
    return value


def _at_least_one(env: Mapping[str, str], name: str, default: int) -> int:
    value = integer(env, name, default)
    if value < 1:
        raise InvalidSetting(f"{name} must be at least 1")
    return value


def _upload_quota(env: Mapping[str, str]) -> int:
    quota = integer(env, "UPLOAD_QUOTA_BYTES_PER_PRINCIPAL", DEFAULT_UPLOAD_QUOTA_BYTES)
    largest = integer(env, "UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES)
    if quota < largest:
        raise InvalidSetting("UPLOAD_QUOTA_BYTES_PER_PRINCIPAL must be at least UPLOAD_MAX_BYTES")
    return quota


def _window(env: Mapping[str, str]) -> float:
    seconds = number(env, "FAILED_ATTEMPT_WINDOW_SECONDS", 60.0)
    if not 1 <= seconds <= 3600:
        raise InvalidSetting("FAILED_ATTEMPT_WINDOW_SECONDS must be between 1 and 3600")
    return seconds


def _throttle(env: Mapping[str, str]) -> ThrottleSettings:
    default = ThrottleSettings()
    try:
        return ThrottleSettings(
            free_per_client=integer(env, "CREDENTIAL_FAILURES_FREE_PER_CLIENT", default.free_per_client),
            free_per_address=integer(env, "CREDENTIAL_FAILURES_FREE_PER_ADDRESS", default.free_per_address),
            max_backoff_seconds=number(env, "CREDENTIAL_BACKOFF_MAX_SECONDS", default.max_backoff_seconds),
            window_seconds=number(env, "CREDENTIAL_FAILURE_WINDOW_SECONDS", default.window_seconds),
        )
    except ValueError as error:
        raise InvalidSetting(f"CREDENTIAL_*: {error}") from None


def _limiter(env: Mapping[str, str]) -> LimiterSettings:
    try:
        return LimiterSettings(
            redis_timeout_seconds=number(
                env, "RATE_LIMIT_REDIS_TIMEOUT_SECONDS", DEFAULT_LIMITER.redis_timeout_seconds
            ),
            redis_down_after_seconds=number(
                env, "RATE_LIMIT_REDIS_DOWN_AFTER_SECONDS", DEFAULT_LIMITER.redis_down_after_seconds
            ),
            redis_retry_seconds=number(
                env, "RATE_LIMIT_REDIS_RETRY_SECONDS", DEFAULT_LIMITER.redis_retry_seconds
            ),
        )
    except ValueError as error:
        raise InvalidSetting(f"RATE_LIMIT_REDIS_*: {error}") from None


def _jwt(env: Mapping[str, str]) -> auth.JwtSettings:
    try:
        return auth.JwtSettings.from_settings(env)
    except ValueError as error:
        raise InvalidSetting(str(error)) from None


def _api_keys(env: Mapping[str, str]) -> dict[str, auth.ApiKey]:
    try:
        return auth.parse_api_keys(optional(env, "API_KEYS", ""))
    except ValueError as error:
        raise InvalidSetting(f"API_KEYS: {error}") from None


def _service_accounts(env: Mapping[str, str]) -> dict[str, auth.ServiceAccount]:
    """SERVICE_ACCOUNTS: JSON [{"client_id", "secret_hash" (pbkdf2$…), "roles": [...]}]."""
    text = optional(env, "SERVICE_ACCOUNTS", "")
    if not text:
        return {}
    try:
        entries = json.loads(text)
        accounts = [
            auth.ServiceAccount(entry["client_id"], entry["secret_hash"], frozenset(entry.get("roles", [])))
            for entry in entries
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidSetting(f"SERVICE_ACCOUNTS: {type(error).__name__} in an entry") from None
    return {account.client_id: account for account in accounts}


def _webhook_secrets(env: Mapping[str, str]) -> dict[str, bytes]:
    """WEBHOOK_SECRETS: JSON {"payment/wechat_pay": "<base64>", "carrier/sf": …, "channel/taobao": …}.

    A secret is bound to one kind and one sender: the carrier SF's secret cannot sign a payment."""
    text = optional(env, "WEBHOOK_SECRETS", "")
    if not text:
        return {}
    try:
        raw = json.loads(text)
        secrets = {str(key).lower(): base64.b64decode(value, validate=True) for key, value in raw.items()}
    except (ValueError, AttributeError, binascii.Error):
        raise InvalidSetting("WEBHOOK_SECRETS must be a JSON object of kind/sender → base64 secret") from None
    unbound = [
        key for key in secrets if key.partition("/")[0] not in WEBHOOK_KINDS or not key.partition("/")[2]
    ]
    if unbound:
        raise InvalidSetting(
            f"WEBHOOK_SECRETS: {', '.join(sorted(unbound))} must name a kind and a sender, "
            f"e.g. payment/wechat_pay ({', '.join(WEBHOOK_KINDS)})"
        )
    short = [key for key, secret in secrets.items() if len(secret) < 32]
    if short:
        raise InvalidSetting(f"WEBHOOK_SECRETS: the secrets of {', '.join(short)} are shorter than 32 bytes")
    return secrets


# what may stand in a URL's query unescaped (SF is given the push address as it is)
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def provider_keys(env: Mapping[str, str]) -> ProviderKeys:
    """PAYMENT_WECHAT_PLATFORM_SERIAL + PAYMENT_WECHAT_PLATFORM_PUBLIC_KEY + PAYMENT_WECHAT_APIV3_KEY (WeChat
    Pay v3's platform key and the merchant's APIv3 key) and PAYMENT_ALIPAY_PUBLIC_KEY + PAYMENT_ALIPAY_APP_ID;
    a provider whose settings are absent has its notifications refused."""
    wechat_keys = None
    apiv3 = b""
    serial = optional(env, "PAYMENT_WECHAT_PLATFORM_SERIAL", "")
    if serial:
        apiv3 = required(env, "PAYMENT_WECHAT_APIV3_KEY").encode("utf-8")
        if len(apiv3) != 32:
            raise InvalidSetting("setting PAYMENT_WECHAT_APIV3_KEY must be 32 bytes (AES-256)")
        try:
            wechat_keys = {serial: load_public_key(required(env, "PAYMENT_WECHAT_PLATFORM_PUBLIC_KEY"))}
        except BadKey as error:
            raise InvalidSetting(f"setting PAYMENT_WECHAT_PLATFORM_PUBLIC_KEY: {error}") from None
    alipay_key = None
    alipay_text = optional(env, "PAYMENT_ALIPAY_PUBLIC_KEY", "")
    if alipay_text:
        try:
            alipay_key = load_public_key(alipay_text)
        except BadKey as error:
            raise InvalidSetting(f"setting PAYMENT_ALIPAY_PUBLIC_KEY: {error}") from None
    return ProviderKeys(
        wechat_platform_keys=wechat_keys,
        wechat_apiv3_key=apiv3,
        alipay_public_key=alipay_key,
        alipay_app_id=required(env, "PAYMENT_ALIPAY_APP_ID") if alipay_key is not None else "",
    )


def push_secrets(env: Mapping[str, str]) -> PushSecrets:
    """SF_PUSH_TOKEN (the secret in the push address registered with SF: at least 32 URL-safe characters)
    and KUAIDI100_PUSH_SALT (the salt logistics subscribes with, at least 16 characters), each with an
    optional *_PREVIOUS still accepted during a rotation. Without one, that carrier's pushes are refused."""
    tokens = tuple(
        token
        for token in (optional(env, "SF_PUSH_TOKEN", ""), optional(env, "SF_PUSH_TOKEN_PREVIOUS", ""))
        if token
    )
    for token in tokens:
        if len(token) < 32 or not set(token) <= _URL_SAFE:
            raise InvalidSetting(
                "SF_PUSH_TOKEN(_PREVIOUS) must be at least 32 characters of A-Z a-z 0-9 - _ . ~ "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    salts = tuple(
        salt
        for salt in (
            optional(env, "KUAIDI100_PUSH_SALT", ""),
            optional(env, "KUAIDI100_PUSH_SALT_PREVIOUS", ""),
        )
        if salt
    )
    if any(len(salt) < 16 for salt in salts):
        raise InvalidSetting("KUAIDI100_PUSH_SALT(_PREVIOUS) must be at least 16 characters")
    return PushSecrets(tokens, salts)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    port = integer(env, name, default)
    if not 0 <= port <= 65535:
        raise InvalidSetting(f"{name} must be a port number (0 for none), not {port}")
    return port
