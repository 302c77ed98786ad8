from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.kit.sealing import KeyRing, KeyRingError, SealError

K1 = KeyRing.generate_key()
K2 = KeyRing.generate_key()
HASH_KEY = KeyRing.generate_key()
ORDER = "0190f3c2-7a1b-7c3d-8e4f-0123456789ab"


def ring(active: str = "k1", keys: str | None = None, hash_key: str = HASH_KEY) -> KeyRing:
    return KeyRing.from_settings(keys if keys is not None else f"k1:{K1},k2:{K2}", active, hash_key)


def test_round_trip_and_format() -> None:
    keys = ring()
    sealed = keys.seal("朝阳区建国路88号".encode(), ORDER)
    version, key_id, payload = sealed.split(".")
    assert (version, key_id) == ("v1", "k1")
    assert len(base64.urlsafe_b64decode(payload)) == 12 + len("朝阳区建国路88号".encode()) + 16
    assert keys.open(sealed, ORDER) == "朝阳区建国路88号".encode()
    assert KeyRing.key_id_of(sealed) == "k1"


def test_the_same_plaintext_seals_differently_each_time() -> None:
    keys = ring()
    assert keys.seal(b"13812345678", ORDER) != keys.seal(b"13812345678", ORDER)


@settings(max_examples=200)
@given(plaintext=st.binary(max_size=512), context=st.text(max_size=64))
def test_round_trip_of_any_bytes_and_context(plaintext: bytes, context: str) -> None:
    keys = ring()
    assert keys.open(keys.seal(plaintext, context), context) == plaintext


def test_changing_any_character_fails() -> None:
    keys = ring()
    sealed = keys.seal(b"Tan Ah Kow, 12 Jalan Besar", ORDER)
    for index, char in enumerate(sealed):
        for replacement in {"A", "a", "0", "-", "_", "."} - {char}:
            tampered = sealed[:index] + replacement + sealed[index + 1 :]
            with pytest.raises(SealError):
                keys.open(tampered, ORDER)


def test_flipping_any_bit_of_the_payload_fails() -> None:
    keys = ring()
    sealed = keys.seal(b"13812345678", ORDER)
    prefix, payload = sealed.rsplit(".", 1)
    blob = base64.urlsafe_b64decode(payload)
    for index in range(len(blob)):
        for bit in range(8):
            flipped = bytearray(blob)
            flipped[index] ^= 1 << bit
            tampered = f"{prefix}.{base64.urlsafe_b64encode(bytes(flipped)).decode()}"
            with pytest.raises(SealError):
                keys.open(tampered, ORDER)


def test_truncated_or_extended_payload_fails() -> None:
    keys = ring()
    sealed = keys.seal(b"13812345678", ORDER)
    for cut in range(1, len(sealed)):
        with pytest.raises(SealError):
            keys.open(sealed[:cut], ORDER)
    with pytest.raises(SealError):
        keys.open(sealed + "AAAA", ORDER)


def test_wrong_context_fails() -> None:
    keys = ring()
    sealed = keys.seal(b"13812345678", ORDER)
    with pytest.raises(SealError):
        keys.open(sealed, ORDER[:-1] + "c")
    with pytest.raises(SealError):
        keys.open(sealed, "")


def test_unknown_key_id_fails() -> None:
    sealed = ring().seal(b"13812345678", ORDER)
    only_k2 = ring(active="k2", keys=f"k2:{K2}")
    with pytest.raises(SealError, match="unknown key id 'k1'"):
        only_k2.open(sealed, ORDER)


def test_a_key_id_pointing_at_another_known_key_fails() -> None:
    keys = ring()
    sealed = keys.seal(b"13812345678", ORDER)
    with pytest.raises(SealError):
        keys.open(sealed.replace("v1.k1.", "v1.k2.", 1), ORDER)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "..",
        "v1",
        "v1.k1",
        "v1.k1.",
        "v2.k1.AAAA",
        "v1.k 1.AAAA",
        "v1..AAAA",
        "v1.k1.!!!!",
        "v1.k1.A",
        "v1.k1.AAAA",
        "v1.k1.AAAA.AAAA",
        "v1.k1.ÄÖÜ",
        "v1.k1.\udc80",
        "plain text address",
    ],
)
def test_garbage_fails_with_seal_error(garbage: str) -> None:
    keys = ring()
    with pytest.raises(SealError):
        keys.open(garbage, ORDER)
    if garbage.count(".") != 2 or not garbage.startswith("v1."):
        with pytest.raises(SealError):
            KeyRing.key_id_of(garbage)


@given(garbage=st.text(max_size=80) | st.text(alphabet="v1.k2AZaz09-_=", max_size=80))
def test_arbitrary_text_fails_only_with_seal_error(garbage: str) -> None:
    with pytest.raises(SealError):
        ring().open(garbage, ORDER)


def test_non_string_input_fails_with_seal_error() -> None:
    with pytest.raises(SealError):
        ring().open(b"v1.k1.AAAA", ORDER)  # type: ignore[arg-type]
    with pytest.raises(SealError):
        ring().open(None, ORDER)  # type: ignore[arg-type]


def test_rotation() -> None:
    before = ring(active="k1")
    old = before.seal(b"13812345678", ORDER)
    after = ring(active="k2")

    assert after.open(old, ORDER) == b"13812345678"
    new = after.seal(b"13900001111", ORDER)
    assert KeyRing.key_id_of(new) == "k2"

    moved = after.reseal(old, ORDER)
    assert moved is not None
    assert KeyRing.key_id_of(moved) == "k2"
    assert after.open(moved, ORDER) == b"13812345678"
    assert after.reseal(moved, ORDER) is None
    assert after.reseal(new, ORDER) is None

    # Once everything is resealed, k1 can leave the ring and the data still opens.
    retired = ring(active="k2", keys=f"k2:{K2}")
    assert retired.open(moved, ORDER) == b"13812345678"


def test_reseal_checks_the_old_value() -> None:
    after = ring(active="k2")
    old = ring(active="k1").seal(b"13812345678", ORDER)
    with pytest.raises(SealError):
        after.reseal(old, "another order")
    with pytest.raises(SealError):
        after.reseal("not sealed", ORDER)


def test_lookup_hash_is_deterministic_and_key_dependent() -> None:
    first = ring()
    again = ring(active="k2")
    other = ring(hash_key=KeyRing.generate_key())
    digest = first.lookup_hash("13812345678")
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert digest == again.lookup_hash("13812345678")
    assert digest != first.lookup_hash("13812345679")
    assert digest != other.lookup_hash("13812345678")


def test_lookup_hash_does_not_depend_on_the_encryption_keys() -> None:
    assert ring(keys=f"k1:{K1}").lookup_hash("x") == ring(keys=f"k1:{K2}").lookup_hash("x")


def test_generated_keys_are_32_random_bytes() -> None:
    keys = {KeyRing.generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(key, validate=True)) == 32 for key in keys)


def test_urlsafe_and_unpadded_keys_are_accepted() -> None:
    raw = b"\xfb\xff" * 16  # encodes to '+' and '/' in standard base64
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "+" in standard and "-" in urlsafe
    sealed = ring(keys=f"k1:{standard}").seal(b"x", ORDER)
    assert ring(keys=f" k1 : {urlsafe} , ").open(sealed, ORDER) == b"x"


def test_the_repr_shows_no_key_material() -> None:
    keys = ring()
    shown = repr(keys) + str(keys)
    for secret in (K1, K2, HASH_KEY):
        assert secret not in shown
        assert repr(base64.b64decode(secret)) not in shown
    assert "k1" in shown


def _secret(length: int = 32) -> str:
    return base64.b64encode(os.urandom(length)).decode()


SHORT = _secret(16)
BAD = "!!" + _secret()[2:]


@pytest.mark.parametrize(
    ("keys", "active", "hash_key", "problem", "material"),
    [
        (f"k1:{K1}", "", HASH_KEY, "active key id setting is empty", [K1, HASH_KEY]),
        (f"k1:{K1}", "k9", HASH_KEY, r"active key id 'k9' is not among the configured keys \(k1\)", [K1]),
        (f"k1:{K1}", K2, HASH_KEY, r"active key id \(invalid key id\)", [K1, K2]),
        (f"k1:{SHORT}", "k1", HASH_KEY, "key 'k1' is 16 bytes; AES-256 needs exactly 32", [SHORT]),
        (f"k1:{BAD}", "k1", HASH_KEY, "key 'k1' is not valid base64", [BAD]),
        (f"k1:{K1}", "k1", SHORT, "hash key is 16 bytes; it needs at least 32", [K1, SHORT]),
        (f"k1:{K1}", "k1", BAD, "hash key is not valid base64", [K1, BAD]),
        (f"k1:{K1}", "k1", "", "hash key setting is empty", [K1]),
        (f"k1:{K1}", "k1", "  ", "hash key setting is empty", [K1]),
        ("", "k1", HASH_KEY, "keys setting is empty", [HASH_KEY]),
        (" , ", "k1", HASH_KEY, "keys setting is empty", [HASH_KEY]),
        (f"k1:{K1},{K2}", "k1", HASH_KEY, "keys entry 2 has no ':'", [K1, K2]),
        (f"k1:{K1},bad.id:{K2}", "k1", HASH_KEY, "keys entry 2 has an invalid key id", [K1, K2]),
        (f"{'k' * 33}:{K1}", "k1", HASH_KEY, "keys entry 1 has an invalid key id", [K1]),
        (f"{K1}:k1", "k1", HASH_KEY, "keys entry 1 has an invalid key id", [K1]),
        (f"k1:{K1},k1:{K2}", "k1", HASH_KEY, "key id 'k1' appears more than once", [K1, K2]),
        ("k1:", "k1", HASH_KEY, "key 'k1' is empty", []),
    ],
)
def test_settings_errors_name_the_problem_without_key_material(
    keys: str, active: str, hash_key: str, problem: str, material: list[str]
) -> None:
    with pytest.raises(KeyRingError, match=problem) as raised:
        KeyRing.from_settings(keys, active, hash_key)
    message = str(raised.value)
    for secret in material:
        # Not even a fragment: a partial key narrows a brute-force search.
        for start in range(0, max(1, len(secret) - 7)):
            assert secret[start : start + 8] not in message
    assert raised.value.__cause__ is None
    assert isinstance(raised.value, ValueError)


def test_direct_construction_is_validated_too() -> None:
    raw = base64.b64decode(K1)
    with pytest.raises(KeyRingError, match="no keys"):
        KeyRing(keys={}, active_key_id="k1", hash_key=raw)
    with pytest.raises(KeyRingError, match="a key id is invalid"):
        KeyRing(keys={"k.1": raw}, active_key_id="k.1", hash_key=raw)
    with pytest.raises(KeyRingError, match="key 'k1' is 31 bytes"):
        KeyRing(keys={"k1": raw[:31]}, active_key_id="k1", hash_key=raw)
    with pytest.raises(KeyRingError, match="active key id is not set"):
        KeyRing(keys={"k1": raw}, active_key_id="", hash_key=raw)


def test_the_ring_cannot_be_changed_through_the_callers_dict() -> None:
    raw = base64.b64decode(K1)
    source = {"k1": raw}
    keys = KeyRing(keys=source, active_key_id="k1", hash_key=raw)
    sealed = keys.seal(b"x", ORDER)
    source["k1"] = base64.b64decode(K2)
    assert keys.open(sealed, ORDER) == b"x"
    with pytest.raises(TypeError):
        keys.keys["k1"] = raw  # type: ignore[index]
