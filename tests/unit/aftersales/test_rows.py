"""The ticket ↔ JSON document codec of the store's `state` column: every ticket the domain can make,
in every state, reads back equal (its recorded events are not state)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.aftersales.domain.approval import RuleSetStatus, default_rule_set, draft, to_document
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import Ticket
from services.aftersales.store.rows import (
    DocumentError,
    from_document,
    rule_set_row,
    rule_set_version,
    ticket_document,
    ticket_from_document,
)
from services.aftersales.store.rows import (
    to_document as encode,
)
from tests.unit.aftersales.builders import T0, order, ticket
from tests.unit.aftersales.journeys import walk

S = TicketStatus


def through_json(t: Ticket) -> Ticket:
    """What the database gives back: the document as JSON text, parsed again."""
    return ticket_from_document(json.loads(json.dumps(ticket_document(t))))


def assert_round_trips(t: Ticket) -> None:
    back = through_json(t)
    assert back == t
    # equal dataclasses can still differ in what equality does not see: the types and the offsets
    assert type(back.status) is TicketStatus and back.lines == t.lines
    assert back.opened_at.utcoffset() == t.opened_at.utcoffset()
    assert back.refund_no == t.refund_no and back.claims == t.claims and back.facts() == t.facts()
    assert back.events == [] and back.next_deadline() == t.next_deadline()


@st.composite
def tickets(draw: st.DrawFn) -> tuple[Ticket, list[int]]:
    units = draw(
        st.lists(
            st.tuples(st.integers(1, 50_000), st.integers(1, 5)),
            min_size=1,
            max_size=4,
        )
    )
    goods = sum(price * quantity for price, quantity in units)
    promotion, coupon, points = (draw(st.integers(0, goods // 4)) for _ in range(3))
    shipping = draw(st.integers(0, 2_000))
    known = st.sampled_from([True, False, None])
    customised = draw(st.lists(known, min_size=len(units), max_size=len(units)))
    snapshot = order(units, promotion, coupon, points, shipping, customised=customised)
    indexes = draw(st.lists(st.integers(0, len(units) - 1), min_size=1, max_size=len(units), unique=True))
    lines = [(index, draw(st.integers(1, units[index][1]))) for index in indexes]
    opened = ticket(
        snapshot,
        lines,
        kind=draw(st.sampled_from(TicketKind)),
        reason=draw(st.sampled_from(Reason)),
        note=draw(st.text(max_size=40)),
        damage_reported=draw(st.booleans()),
    )
    # half the picks take the first, forward move: the walks get far
    picks = st.one_of(st.just(0), st.integers(0, 1_000))
    return opened, draw(st.lists(picks, max_size=12))


@given(tickets())
def test_any_ticket_in_any_state_reads_back_equal(drawn: tuple[Ticket, list[int]]) -> None:
    opened, picks = drawn
    for state in walk(opened, picks):
        assert_round_trips(state)


# journeys that between them go through every status, every field set at least once
Journey = tuple[TicketKind, Reason, tuple[tuple[int, int], ...], list[int]]
BOTH = ((0, 2), (2, 3))
JOURNEYS: dict[str, Journey] = {
    "refund only, by the rules, refunded, closed": (
        TicketKind.REFUND_ONLY,
        Reason.DAMAGED,
        ((2, 1),),
        [1, 0, 0, 0],
    ),
    "refund closed by the provider, asked again, abnormal, settled": (
        TicketKind.REFUND_ONLY,
        Reason.SIZE_FIT,
        BOTH,
        [0, 0, 3, 2, 1, 2],
    ),
    "return flagged, escalated, approved, received with damage, refunded": (
        TicketKind.RETURN_AND_REFUND,
        Reason.CHANGED_MIND,
        BOTH,
        [3, 8, 0, 0, 2, 0, 0, 0],
    ),
    "exchange received and replaced, closed": (TicketKind.EXCHANGE, Reason.WRONG_ITEM, BOTH, [0, 1, 0, 0]),
    "exchange whose replacement was delivered": (TicketKind.EXCHANGE, Reason.WRONG_ITEM, BOTH, [0, 1, 0, 1]),
    "exchange with a note on its log, closed": (
        TicketKind.EXCHANGE,
        Reason.WRONG_ITEM,
        BOTH,
        [0, 1, 0, 3, 0],
    ),
    "exchange whose replacement was cancelled, closed": (
        TicketKind.EXCHANGE,
        Reason.WRONG_ITEM,
        BOTH,
        [0, 1, 0, 2, 0],
    ),
    "rejected then closed": (TicketKind.RETURN_AND_REFUND, Reason.QUALITY_ISSUE, BOTH, [2, 0]),
    "review by the rules (not known if customised), withdrawn": (
        TicketKind.REFUND_ONLY,
        Reason.MISSING_PARTS,
        ((1, 1),),
        [1, 4],
    ),
}


def journey(
    kind: TicketKind, reason: Reason, lines: tuple[tuple[int, int], ...], picks: list[int]
) -> list[Ticket]:
    """Copies of the ticket after each move (the walk moves one object)."""
    snapshot = order(customised=[False, None, False])
    opened = ticket(snapshot, lines, kind=kind, reason=reason, note="too small 偏小")
    return [dataclasses.replace(state) for state in walk(opened, picks)]


@pytest.mark.parametrize("name", JOURNEYS)
def test_every_state_of_each_journey_reads_back_equal(name: str) -> None:
    for state in journey(*JOURNEYS[name]):
        assert_round_trips(state)


def test_the_journeys_go_through_every_status_and_set_every_field() -> None:
    states = [state for spec in JOURNEYS.values() for state in journey(*spec)]
    assert {state.status for state in states} == set(TicketStatus)
    defaults = Ticket.__dataclass_fields__
    for name, spec in defaults.items():
        if not spec.compare or spec.default is dataclasses.MISSING:
            continue
        assert any(getattr(state, name) != spec.default for state in states), f"{name} never set"


def test_the_document_is_plain_json_with_times_carrying_their_offset() -> None:
    document = ticket_document(ticket(at=T0.astimezone(timezone(timedelta(hours=8)))))
    text = json.dumps(document, ensure_ascii=False)
    assert '"opened_at": "2026-03-01T16:00:00+08:00"' in text
    assert "events" not in document
    assert document["order"]["lines"][0]["amounts"]["goods_minor"] == 25800
    assert document["kind"] == "RETURN_AND_REFUND" and document["reason"] == "size_fit"


def test_a_document_that_does_not_fit_names_the_path_to_the_bad_value() -> None:
    document = ticket_document(ticket())
    document["order"]["lines"][1]["amounts"]["coupon_minor"] = True
    bad = r"^Ticket\.order\.lines\[1\]\.amounts\.coupon_minor: expected an integer, found bool"
    with pytest.raises(DocumentError, match=bad):
        ticket_from_document(document)
    document = ticket_document(ticket())
    document["status"] = "LOST"
    with pytest.raises(DocumentError, match=r"^Ticket\.status: expected a TicketStatus"):
        ticket_from_document(document)
    document = ticket_document(ticket())
    del document["quote"]
    with pytest.raises(DocumentError, match=r"^Ticket\.quote: missing"):
        ticket_from_document(document)
    document = ticket_document(ticket())
    document["order"]["paid_at"] = "2026-03-01T08:00:00"
    with pytest.raises(DocumentError, match=r"^Ticket\.order\.paid_at: expected a time with its offset"):
        ticket_from_document(document)


def test_a_field_added_later_takes_its_default_and_one_removed_later_is_ignored() -> None:
    t = ticket()
    document = ticket_document(t)
    del document["close_note"]
    document["a_field_of_long_ago"] = 1
    assert ticket_from_document(document) == t


def test_a_naive_time_is_never_written() -> None:
    snapshot = order()
    object.__setattr__(snapshot, "paid_at", datetime(2026, 3, 1, 8, 0))
    with pytest.raises(ValueError, match="no time zone"):
        encode(snapshot, OrderSnapshot)


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Everything:
    by_line: dict[int, str]
    by_colour: Mapping[Colour, tuple[int, ...]]
    pair: tuple[str, int]
    tags: frozenset[str] = frozenset()
    free: Any = None
    at: datetime | None = None
    items: list[bool] = field(default_factory=list)


def test_the_codec_reads_every_shape_it_writes() -> None:
    value = Everything(
        {2: "x", 10: "y"},
        {Colour.RED: (1, 2)},
        ("a", 1),
        frozenset({"b", "a"}),
        {"any": ["json"]},
        datetime(2026, 1, 1, tzinfo=UTC),
        [True],
    )
    document = encode(value)
    assert document["by_line"] == {"2": "x", "10": "y"} and document["tags"] == ["a", "b"]
    assert from_document(Everything, json.loads(json.dumps(document))) == value
    with pytest.raises(DocumentError, match=r"^Everything\.pair: expected an array of 2"):
        from_document(Everything, {**document, "pair": ["a"]})
    with pytest.raises(DocumentError, match=r"^Everything\.by_line\.x: expected an integer key"):
        from_document(Everything, {**document, "by_line": {"x": "y"}})


def test_a_type_without_a_codec_is_refused_when_its_codec_is_built() -> None:
    @dataclass
    class Odd:
        either: int | str

    with pytest.raises(TypeError, match=re.escape("only `X | None` unions")):
        encode(Odd(1))


def test_a_rule_set_version_reads_back_from_its_row() -> None:
    version = draft(3, to_document(default_rule_set()), "tighter", T0)
    row = rule_set_row(version, "ops-1")
    assert row["status"] == RuleSetStatus.DRAFT.value and row["created_by"] == "ops-1"
    assert rule_set_version(row) == version
    assert rule_set_version(row).rule_set().rules == default_rule_set().rules
