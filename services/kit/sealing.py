"""Encryption at rest for sensitive fields (PIPL): AES-256-GCM under a ring of keys from settings.

A sealed value is a self-describing string, `v1.<key id>.<urlsafe base64 of nonce + ciphertext>`:
the key id travels with the data so keys can rotate without a flag day. Old keys stay in the
ring only to open what they sealed; everything new is sealed under the active key, and a
rotation job calls `reseal` until nothing refers to a retired key any more.

The caller passes a context (for example the order id) that is bound in as associated data, so a
ciphertext copied onto another row fails to open instead of leaking one customer's address into
another's order.

Equality lookups (find the orders of a phone number) cannot use the ciphertext, which is random
by design; `lookup_hash` gives a keyed HMAC for a blind index. Its key is separate from the
encryption keys so a leaked index key does not open any data, and plain SHA-256 is not used
because phone numbers are few enough to brute-force.

Nothing here ever puts key material into an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_HASH_KEY_BYTES = 32
VERSION = "v1"

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KEY_ID_RULE = "1-32 characters of A-Z a-z 0-9 _ -"


class KeyRingError(ValueError):
    """The key settings are unusable; says which part and why, never the key bytes."""


class SealError(Exception):
    """A sealed value cannot be opened: tampered, wrong context, unknown key or not a sealed value."""


def _is_key_id(value: str) -> bool:
    return _KEY_ID.fullmatch(value) is not None


def _decode_key(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional (people paste keys from both kinds of tools)."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    if not cleaned:
        raise KeyRingError(f"{what} is empty")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        # The underlying error can quote the input, so it is deliberately dropped.
        raise KeyRingError(f"{what} is not valid base64") from None


@dataclass(frozen=True)
class KeyRing:
    """The encryption keys a service holds, the one new data is sealed with, and the lookup-hash key."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_key_id: str
    hash_key: bytes = field(repr=False)
    _ciphers: Mapping[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("key ring has no keys")
        for key_id, key in self.keys.items():
            if not _is_key_id(key_id):
                raise KeyRingError(f"a key id is invalid: key ids are {_KEY_ID_RULE}")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
        if not self.active_key_id:
            raise KeyRingError("active key id is not set")
        if self.active_key_id not in self.keys:
            known = ", ".join(sorted(self.keys))
            # Safe to echo: a string that is not one of the ids is either a typo'd id or not valid
            # as an id at all, and in the latter case only the rule is given.
            shown = repr(self.active_key_id) if _is_key_id(self.active_key_id) else "(invalid key id)"
            raise KeyRingError(f"active key id {shown} is not among the configured keys ({known})")
        if len(self.hash_key) < MIN_HASH_KEY_BYTES:
            raise KeyRingError(
                f"hash key is {len(self.hash_key)} bytes; it needs at least {MIN_HASH_KEY_BYTES}"
            )
        # Freeze a private copy so a caller mutating its dict cannot swap keys under us.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "hash_key", bytes(self.hash_key))
        object.__setattr__(
            self, "_ciphers", MappingProxyType({key_id: AESGCM(key) for key_id, key in self.keys.items()})
        )

    @classmethod
    def from_settings(cls, keys: str, active_key_id: str, hash_key: str) -> KeyRing:
        """Build from setting strings: `keys` is `k1:<base64>,k2:<base64>`, `hash_key` is base64."""
        parsed: dict[str, bytes] = {}
        entries = [entry.strip() for entry in keys.split(",") if entry.strip()]
        if not entries:
            raise KeyRingError("keys setting is empty; expected 'id:<base64 of 32 bytes>,...'")
        for position, entry in enumerate(entries, start=1):
            # Entries are named by position: a malformed entry may be nothing but key material.
            key_id, colon, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not colon:
                raise KeyRingError(f"keys entry {position} has no ':'; expected 'id:<base64 of 32 bytes>'")
            if not _is_key_id(key_id):
                raise KeyRingError(f"keys entry {position} has an invalid key id: key ids are {_KEY_ID_RULE}")
            if key_id in parsed:
                raise KeyRingError(f"key id {key_id!r} appears more than once in the keys setting")
            key = _decode_key(encoded, f"key {key_id!r}")
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
            parsed[key_id] = key
        active = active_key_id.strip()
        if not active:
            raise KeyRingError("active key id setting is empty")
        if not hash_key.strip():
            raise KeyRingError("hash key setting is empty")
        return cls(keys=parsed, active_key_id=active, hash_key=_decode_key(hash_key, "hash key"))

    @staticmethod
    def generate_key() -> str:
        """A fresh random key, standard base64, fit for either the keys or the hash key setting."""
        return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")

    def seal(self, plaintext: bytes, context: str) -> str:
        """Encrypt under the active key, bound to `context`.

        The nonce is random per call: with 96 bits that is safe for far more values than one key
        will ever seal between rotations, and it needs no counter shared across replicas.
        """
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self.active_key_id].encrypt(nonce, plaintext, _aad(context))
        payload = base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")
        return f"{VERSION}.{self.active_key_id}.{payload}"

    def open(self, sealed: str, context: str) -> bytes:
        """Decrypt a value sealed under any key in the ring; SealError for anything that does not verify."""
        key_id, blob = _parse(sealed)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SealError(f"sealed with unknown key id {key_id!r}")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(context))
        except InvalidTag:
            # One message for tamper and wrong context alike: which of them it was is not knowable.
            raise SealError("sealed value does not verify (tampered or wrong context)") from None

    @staticmethod
    def key_id_of(sealed: str) -> str:
        """The key id a value was sealed with, for rotation reports; SealError if it is not a sealed value."""
        return _parse(sealed)[0]

    def reseal(self, sealed: str, context: str) -> str | None:
        """Re-encrypt under the active key, or None if it already is (so the rotation job skips the write).

        An already-active value is not decrypted: the job only has to move data off retired keys,
        and skipping the work keeps a re-run over fully rotated tables cheap.
        """
        if self.key_id_of(sealed) == self.active_key_id:
            return None
        return self.seal(self.open(sealed, context), context)

    def lookup_hash(self, value: str) -> str:
        """Keyed, deterministic hash for blind-index lookups; normalise the value first (e.g. phones)."""
        return hmac.new(self.hash_key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _aad(context: str) -> bytes:
    # surrogatepass: any str a caller can build must work as a context, not only well-formed text.
    return context.encode("utf-8", "surrogatepass")


def _parse(sealed: str) -> tuple[str, bytes]:
    if not isinstance(sealed, str):
        raise SealError("sealed value must be a string")
    parts = sealed.split(".")
    if len(parts) != 3:
        raise SealError("not a sealed value: expected 'v1.<key id>.<data>'")
    version, key_id, payload = parts
    if version != VERSION:
        raise SealError("unsupported sealed value version")
    if not _is_key_id(key_id):
        raise SealError("sealed value has an invalid key id")
    try:
        blob = base64.urlsafe_b64decode(payload.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SealError("sealed value data is not valid base64") from None
    # Base64 tolerates non-canonical spellings (stray padding bits, missing characters in some
    # decoders); insisting on the exact encoding means any altered character is rejected.
    if base64.urlsafe_b64encode(blob).decode("ascii") != payload:
        raise SealError("sealed value data is not canonical base64")
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise SealError("sealed value data is too short")
    return key_id, blob
