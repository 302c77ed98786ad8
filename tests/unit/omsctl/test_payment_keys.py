"""The stack's payment accounts: minted once per home, private to the owner, the provider halves handed
to the payment sandbox and the merchant halves to a service that calls it, and the two halves match."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from omsctl.stack import (
    SANDBOXES,
    Infra,
    Platform,
    payment_client_env,
    payment_settings,
    reset,
)
from sandboxes.payments.config import credentials_from
from services.aftersales.providers.config import alipay_from_env, wechat_from_env
from services.kit.provider_signing import load_private_key, load_public_key, rsa_sign, rsa_verify


def _pairs(private: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> bool:
    return rsa_verify(public, b"m", rsa_sign(private, b"m"))


def test_payment_keys_are_minted_once_per_home_and_wiped_by_reset(tmp_path: Path) -> None:
    first = payment_settings(tmp_path)
    assert payment_settings(tmp_path) == first
    assert (tmp_path / "payment-keys.json").stat().st_mode & 0o077 == 0
    assert len(first["WECHAT_APIV3_KEY"].encode()) == 32
    assert first["WECHAT_MERCHANT_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "\n" not in first["ALIPAY_APP_PRIVATE_KEY"]
    reset(tmp_path)
    assert payment_settings(tmp_path)["WECHAT_APIV3_KEY"] != first["WECHAT_APIV3_KEY"]


def test_the_sandbox_gets_the_provider_halves_and_a_service_the_merchant_halves(tmp_path: Path) -> None:
    payments = next(spec for spec in SANDBOXES if spec.name == "payments")
    assert (payments.default_port, payments.module) == (18020, "sandboxes.payments")
    sandbox_env = Platform(Infra(tmp_path), tmp_path).sandbox_env(
        payments, {"payments": 18020, "envoy": 8080}
    )
    assert sandbox_env["PAYMENT_SANDBOX_SEED"] == "random"
    # the providers notify the gateway's real-format webhooks, through Envoy
    assert (
        sandbox_env["PAYMENT_SANDBOX_WECHAT_NOTIFY_URL"]
        == "http://127.0.0.1:8080/v1/webhooks/providers/wechat_pay"
    )
    assert (
        sandbox_env["PAYMENT_SANDBOX_ALIPAY_NOTIFY_URL"]
        == "http://127.0.0.1:8080/v1/webhooks/providers/alipay"
    )
    assert not any(
        "MERCHANT_PRIVATE" in name or "APP_PRIVATE" in name
        for name in sandbox_env
        if name.startswith("PAYMENT_")
    )
    provider = credentials_from(sandbox_env)
    assert provider.generated == {}, "every key was handed over"
    client_env = payment_client_env(tmp_path, 18020)
    assert not any("PLATFORM_PRIVATE" in name or name == "PAYMENT_ALIPAY_PRIVATE_KEY" for name in client_env)
    wechat, alipay = wechat_from_env(client_env), alipay_from_env(client_env)
    assert wechat is not None and alipay is not None
    assert wechat.api_url == alipay.api_url == "http://127.0.0.1:18020"
    assert wechat.mchid == provider.wechat_mchid and alipay.app_id == provider.alipay_app_id
    assert wechat.apiv3_key.encode() == provider.wechat_apiv3_key
    assert _pairs(load_private_key(wechat.merchant_private_key), provider.wechat_merchant_public_key)
    assert _pairs(load_private_key(alipay.app_private_key), provider.alipay_app_public_key)
    (serial,) = wechat.platform_public_keys
    assert serial == provider.wechat_platform_serial
    platform_public = wechat.platform_public_keys[serial]
    assert _pairs(provider.wechat_platform_private_key, load_public_key(platform_public))
    assert _pairs(provider.alipay_private_key, load_public_key(alipay.alipay_public_key))
