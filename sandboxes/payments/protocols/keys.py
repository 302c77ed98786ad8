"""RSA keys as the providers hand them out: PEM (WeChat's ``apiclient_key.pem``) or one line of base64
DER without headers (Alipay's 应用私钥 / 支付宝公钥: PKCS#8 private keys, X.509 SubjectPublicKeyInfo
public keys). Pure."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class BadKey(ValueError):
    """A key that is not an RSA key in either form."""


def _der(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("neither PEM nor base64 DER") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError) as error:
        raise BadKey(f"not a private key: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError) as error:
        raise BadKey(f"not a public key: {error}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("not an RSA public key")
    return key


def generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_pem(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def private_line(key: rsa.RSAPrivateKey) -> str:
    """Alipay's form: the PKCS#8 DER as one base64 line."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode("ascii")


def public_line(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")
