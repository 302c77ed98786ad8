"""What the provider clients are given: where each API is, the merchant's credentials and keys, and the
call timeout; `from_env` reads them from PAYMENT_* settings (docs/sandboxes.md lists them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.kit.config import InvalidSetting, number, optional, required


@dataclass(frozen=True)
class WechatPayConfig:
    api_url: str  # https://api.mch.weixin.qq.com (the sandbox locally); /v3/… hangs below it
    mchid: str
    merchant_serial: str  # the serial number of the merchant's API certificate
    merchant_private_key: str  # PEM (apiclient_key.pem) or one line of base64 DER
    # the platform's keys by serial (Wechatpay-Serial): more than one while WeChat rotates them
    platform_public_keys: Mapping[str, str] = field(default_factory=dict)
    apiv3_key: str = ""  # 32 characters: decrypts notifications' resources
    notify_url: str = (
        ""  # the refund notification address sent with each refund ("" → the merchant's default)
    )
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class AlipayConfig:
    api_url: str  # https://openapi.alipay.com (the sandbox locally); /gateway.do hangs below it
    app_id: str
    app_private_key: str  # the app's private key (PEM or Alipay's one-line base64 PKCS#8)
    alipay_public_key: str  # Alipay's public key (支付宝公钥): checks answers and notifies
    timeout_seconds: float = 5.0


def wechat_from_env(env: Mapping[str, str]) -> WechatPayConfig | None:
    """None when PAYMENT_WECHAT_API_URL is not set (WeChat Pay not used); MissingSetting otherwise."""
    url = optional(env, "PAYMENT_WECHAT_API_URL", "")
    if not url:
        return None
    apiv3 = required(env, "PAYMENT_WECHAT_APIV3_KEY")
    if len(apiv3.encode("utf-8")) != 32:
        raise InvalidSetting("setting PAYMENT_WECHAT_APIV3_KEY must be 32 bytes (AES-256)")
    return WechatPayConfig(
        api_url=url,
        mchid=required(env, "PAYMENT_WECHAT_MCHID"),
        merchant_serial=required(env, "PAYMENT_WECHAT_MERCHANT_SERIAL"),
        merchant_private_key=required(env, "PAYMENT_WECHAT_MERCHANT_PRIVATE_KEY"),
        platform_public_keys={
            required(env, "PAYMENT_WECHAT_PLATFORM_SERIAL"): required(
                env, "PAYMENT_WECHAT_PLATFORM_PUBLIC_KEY"
            )
        },
        apiv3_key=apiv3,
        notify_url=optional(env, "PAYMENT_WECHAT_REFUND_NOTIFY_URL", ""),
        timeout_seconds=number(env, "PAYMENT_TIMEOUT_SECONDS", 5.0),
    )


def alipay_from_env(env: Mapping[str, str]) -> AlipayConfig | None:
    url = optional(env, "PAYMENT_ALIPAY_API_URL", "")
    if not url:
        return None
    return AlipayConfig(
        api_url=url,
        app_id=required(env, "PAYMENT_ALIPAY_APP_ID"),
        app_private_key=required(env, "PAYMENT_ALIPAY_APP_PRIVATE_KEY"),
        alipay_public_key=required(env, "PAYMENT_ALIPAY_PUBLIC_KEY"),
        timeout_seconds=number(env, "PAYMENT_TIMEOUT_SECONDS", 5.0),
    )
