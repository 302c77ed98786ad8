from __future__ import annotations

from datetime import timedelta

import pytest

from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.retention import (
    DEFAULT_RETENTION,
    SIZE_CHART,
    SIZE_DOWN,
    SIZE_UP,
    RetentionRule,
    size_hint,
    suggest,
)
from services.kit.errors import InvalidArgument
from tests.unit.aftersales.builders import T0


@pytest.mark.parametrize(
    ("note", "hint"),
    [
        ("Too small, my usual size is M", SIZE_UP),
        ("a bit too tight on the shoulders", SIZE_UP),
        ("尺码偏小", SIZE_UP),
        ("it is TOO BIG", SIZE_DOWN),
        ("穿着太大了", SIZE_DOWN),
        ("too small in the waist and too big in the legs", SIZE_CHART),
        ("wrong colour", SIZE_CHART),
        ("", SIZE_CHART),
    ],
)
def test_the_size_hint_reads_the_customers_note(note: str, hint: str) -> None:
    assert size_hint(note) == hint


def test_a_size_reason_gets_a_coupon_and_a_hint_and_other_reasons_nothing() -> None:
    made = suggest(DEFAULT_RETENTION, "t-42", Reason.SIZE_FIT, "too big", T0)
    assert made is not None
    assert made.coupon_code == "FIT-t-42" and made.coupon_amount_minor == 1000
    assert made.valid_until == T0 + timedelta(days=30) and made.size_hint == SIZE_DOWN
    assert suggest(DEFAULT_RETENTION, "t-42", Reason.CHANGED_MIND, "too big", T0) is None


def test_the_rule_is_configurable_and_checked() -> None:
    rule = RetentionRule(
        name="fit_and_mind",
        reasons=frozenset({Reason.SIZE_FIT, Reason.CHANGED_MIND}),
        coupon_amount_minor=2000,
        code_template="BACK{ticket_id}",
    )
    made = suggest(rule, "t-7", Reason.CHANGED_MIND, "", T0)
    assert made is not None and made.coupon_code == "BACKt-7" and made.rule == "fit_and_mind"
    with pytest.raises(InvalidArgument) as invalid:
        RetentionRule(code_template="FIXED")
    assert invalid.value.field == "retention.code_template"
    with pytest.raises(InvalidArgument) as invalid:
        RetentionRule(coupon_amount_minor=0)
    assert invalid.value.field == "retention.coupon_amount_minor"
