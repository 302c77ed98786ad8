"""The providers' signatures and WeChat's resource encryption, as their documentation and SDKs compute
them. Pure (cryptography only).

WeChat Pay v3: SHA256withRSA (PKCS#1 v1.5), base64; a request is signed by the merchant's key over
``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n``, a reply or a notification by the platform's key over
``timestamp\\nnonce\\nbody\\n``; resources are AEAD_AES_256_GCM under the APIv3 key.
Alipay RSA2: SHA256withRSA, base64, over ``k=v&…`` of the parameters with a value, sorted by name,
``sign`` left out (and ``sign_type`` too when checking a notify); an answer is signed over the exact
JSON text of its response node.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

WECHAT_SCHEME = "WECHATPAY2-SHA256-RSA2048"


class BadKey(ValueError):
    """Not an RSA key, in PEM or as one line of base64 DER."""


def _der(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("neither PEM nor base64 DER") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """PEM (WeChat's ``apiclient_key.pem``) or Alipay's one-line base64 PKCS#8."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError) as error:
        raise BadKey(f"not a private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """PEM or one-line base64 X.509 SubjectPublicKeyInfo (Alipay's 支付宝公钥, WeChat's 微信支付公钥)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError) as error:
        raise BadKey(f"not a public key ({error})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("not an RSA public key")
    return key


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


# WeChat Pay v3


def wechat_request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> bytes:
    """``url`` is the path with its query, as sent (``/v3/refund/domestic/refunds/R1``)."""
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n".encode()


def wechat_reply_message(timestamp: str, nonce: str, body: str) -> bytes:
    return f"{timestamp}\n{nonce}\n{body}\n".encode()


def wechat_authorization(
    mchid: str,
    serial_no: str,
    key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: str,
    timestamp: str,
    nonce: str,
) -> str:
    signature = rsa_sign(key, wechat_request_message(method, url, timestamp, nonce, body))
    return (
        f'{WECHAT_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def wechat_decrypt(apiv3_key: bytes, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """AEAD_AES_256_GCM: ``ciphertext`` is base64 of the sealed bytes with the 16-byte tag at the end.
    ValueError when the key, the nonce, the associated data or the bytes are not what was sealed."""
    if len(apiv3_key) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        return AESGCM(apiv3_key).decrypt(nonce.encode("utf-8"), sealed, associated_data.encode("utf-8"))
    except (InvalidTag, binascii.Error, ValueError):
        raise ValueError(
            "the resource does not decrypt (wrong key, nonce, associated data or bytes)"
        ) from None


def wechat_encrypt(apiv3_key: bytes, nonce: str, associated_data: str, plain: bytes) -> str:
    """The inverse, for tests and tools."""
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode("utf-8"), plain, associated_data.encode("utf-8"))
    return base64.b64encode(sealed).decode("ascii")


# Alipay RSA2


def alipay_sign_content(params: Mapping[str, str], leave_out: tuple[str, ...] = ("sign",)) -> str:
    return "&".join(
        f"{name}={params[name]}" for name in sorted(params) if name not in leave_out and params[name] != ""
    )


def alipay_sign(key: rsa.RSAPrivateKey, params: Mapping[str, str]) -> str:
    return rsa_sign(key, alipay_sign_content(params).encode("utf-8"))


def alipay_verify_notify(key: rsa.RSAPublicKey, form: Mapping[str, str]) -> bool:
    """A notify's ``sign`` over every other field but ``sign_type``."""
    content = alipay_sign_content(form, ("sign", "sign_type"))
    return rsa_verify(key, content.encode("utf-8"), form.get("sign", ""))


def response_node_text(body: str, name: str) -> str | None:
    """The exact JSON text of ``name``'s object in an Alipay answer (what its ``sign`` covers), or None."""
    decoder = json.JSONDecoder()
    marker = f'"{name}"'
    at = body.find(marker)
    while at != -1:
        colon = at + len(marker)
        while colon < len(body) and body[colon] in " \t\r\n":
            colon += 1
        if colon < len(body) and body[colon] == ":":
            start = colon + 1
            while start < len(body) and body[start] in " \t\r\n":
                start += 1
            try:
                _, end = decoder.raw_decode(body, start)
            except ValueError:
                return None
            return body[start:end]
        at = body.find(marker, at + 1)
    return None
