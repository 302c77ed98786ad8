from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orders.domain.masking import (
    PII_ROLES,
    mask_detail,
    mask_name,
    mask_phone,
    may_see_pii,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("李雷雷", "李**"),
        ("韩梅梅", "韩**"),
        ("欧阳娜娜", "欧***"),
        ("Tan Ah Kow", "T*********"),
        ("  王五 ", "王*"),
        ("李", "*"),
        ("", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("+86 138-1234-5678", "+86 138****5678"),
        ("+8613812345678", "+86 138****5678"),
        ("008613812345678", "+86 138****5678"),
        ("8613812345678", "+86 138****5678"),
        ("１３８１２３４５６７８", "138****5678"),
        ("010-12345678", "*******5678"),
        ("+86 10 1234 5678", "+86 ******5678"),
        ("+65 9123 4567", "+65 ****4567"),
        ("+1 (415) 555-0134", "+1 ******0134"),
        ("12345", "***45"),
        ("1234", "***4"),
        ("123", "***"),
        ("n/a", "****"),
        ("", ""),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("detail", "masked"),
    [
        ("朝阳区建国路88号SOHO现代城5号楼1203室", "朝阳区建国路****"),
        ("12 Jalan Besar #03-01", "12 Jal****"),
        ("朝阳区建国路8号", "朝阳区建国路****"),
        ("建国路88号", "建国路****"),
        ("12号", "1****"),
        ("  ", ""),
    ],
)
def test_mask_detail(detail: str, masked: str) -> None:
    assert mask_detail(detail) == masked


def test_mask_detail_hides_the_length() -> None:
    assert mask_detail("朝阳区建国路88号") == mask_detail("朝阳区建国路88号SOHO现代城5号楼1203室")


separators = st.sampled_from(["", " ", "-", ".", "(", ")"])


@st.composite
def formatted_phones(draw: st.DrawFn) -> tuple[str, str]:
    """A digit string of 7..15 digits, with separators and an optional "+" sprinkled in."""
    digits = draw(st.text(alphabet="0123456789", min_size=7, max_size=15))
    parts = [draw(st.sampled_from(["", "+"]))]
    for digit in digits:
        parts.append(digit + draw(separators))
    return "".join(parts), digits


@given(formatted_phones())
def test_masked_phone_never_contains_the_whole_number(case: tuple[str, str]) -> None:
    phone, digits = case
    masked = mask_phone(phone)
    assert digits not in masked
    assert digits not in re.sub(r"[^0-9]", "", masked)
    assert "*" in masked


@given(st.text(max_size=30))
def test_mask_phone_never_fails_on_any_text(text: str) -> None:
    mask_phone(text)
    normalise_phone(text)


@given(st.text(min_size=2, max_size=30).filter(lambda name: len(name.strip()) >= 2))
def test_mask_name_shows_only_the_first_character(name: str) -> None:
    masked = mask_name(name)
    assert masked[0] == name.strip()[0]
    assert set(masked[1:]) == {"*"}
    assert len(masked) == len(name.strip())


@pytest.mark.parametrize(
    "spelling",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138-1234-5678",
        "+86 13812345678",
        "+8613812345678",
        "(+86) 138 1234 5678",
        "0086 138 1234 5678",
        "008613812345678",
        "8613812345678",
        "86 138 1234 5678",
        "１３８１２３４５６７８",
        "＋８６　１３８１２３４５６７８",
    ],
)
def test_every_spelling_of_a_cn_mobile_normalises_alike(spelling: str) -> None:
    assert normalise_phone(spelling) == "13812345678"


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [
        ("010-12345678", "01012345678"),
        ("+86 10 1234 5678", "01012345678"),
        ("0086 10 12345678", "01012345678"),
        ("+86 010 12345678", "01012345678"),
        ("+65 9123 4567", "006591234567"),
        ("0065 9123 4567", "006591234567"),
        ("+1 381 234 5678", "0013812345678"),
        ("861234567", "861234567"),
        ("", ""),
    ],
)
def test_other_numbers_normalise(spelling: str, normal: str) -> None:
    assert normalise_phone(spelling) == normal


def test_a_foreign_number_does_not_collide_with_a_cn_mobile() -> None:
    assert normalise_phone("+1 381 234 5678") != normalise_phone("13812345678")


mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(mobiles, st.sampled_from(["", "+86", "+86 ", "0086", "0086 ", "86", "(+86) "]), separators)
def test_normalise_phone_equivalences(mobile: str, prefix: str, separator: str) -> None:
    spelled = prefix + separator.join([mobile[:3], mobile[3:7], mobile[7:]])
    assert normalise_phone(spelled) == mobile
    assert normalise_phone(normalise_phone(spelled)) == mobile


@given(mobiles)
def test_mask_and_normalise_agree_on_mobiles(mobile: str) -> None:
    assert mask_phone("+86 " + mobile) == "+86 " + mask_phone(mobile)
    assert mask_phone(mobile) == f"{mobile[:3]}****{mobile[-4:]}"


def test_pii_roles() -> None:
    assert frozenset({"admin", "supervisor", "warehouse", "service"}) == PII_ROLES


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        (["admin"], True),
        (["supervisor"], True),
        (["warehouse"], True),
        (["service"], True),
        ({"finance", "service"}, True),
        (("Admin",), False),
        ([" warehouse "], False),
        ([], False),
        (["finance"], False),
        (["operations", "risk"], False),
        (["customer"], False),
        (["admins"], False),
        ([""], False),
    ],
)
def test_may_see_pii(roles: list[str], allowed: bool) -> None:
    assert may_see_pii(roles) is allowed


def test_may_see_pii_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        may_see_pii("admin")


def test_may_see_pii_accepts_a_generator() -> None:
    assert may_see_pii(role for role in ["finance", "admin"])
