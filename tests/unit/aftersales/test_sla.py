from __future__ import annotations

from datetime import timedelta

import pytest

from services.aftersales.domain.events import TicketEscalated, TicketFlagged
from services.aftersales.domain.sla import (
    DEFAULT_SLA,
    Colour,
    Due,
    SlaMarks,
    SlaPolicy,
    colour,
    due,
    holds_next_order,
    next_deadline,
)
from services.kit.clock import FixedClock
from services.kit.errors import InvalidArgument
from tests.unit.aftersales.builders import T0, ticket

H = timedelta(hours=1)


def test_nothing_is_due_before_48_hours_then_a_flag_then_an_escalation_at_72() -> None:
    t = ticket()
    clock = FixedClock(T0)
    clock.advance(47 * H + timedelta(minutes=59))
    assert due(t.sla_marks, clock.now()) is Due.NOTHING
    assert t.apply_sla(clock.now()) == []
    clock.advance(timedelta(minutes=1))
    flagged = t.apply_sla(clock.now())
    assert [type(e) for e in flagged] == [TicketFlagged] and t.flagged_at == T0 + 48 * H
    assert isinstance(flagged[0], TicketFlagged) and flagged[0].respond_by == T0 + 48 * H
    # a second sweep at the same moment, or an hour on, does nothing
    assert t.apply_sla(clock.now()) == []
    clock.advance(H)
    assert t.apply_sla(clock.now()) == []
    clock.advance(23 * H)
    escalated = t.apply_sla(clock.now())
    assert [type(e) for e in escalated] == [TicketEscalated]
    assert isinstance(escalated[0], TicketEscalated) and escalated[0].to_role == "supervisor"
    clock.advance(H)
    assert t.apply_sla(clock.now()) == [] and due(t.sla_marks, clock.now()) is Due.NOTHING
    assert [type(e).__name__ for e in t.events].count("TicketFlagged") == 1


def test_a_sweep_that_comes_late_flags_and_escalates_at_once() -> None:
    t = ticket()
    events = t.apply_sla(T0 + 80 * H)
    assert [type(e) for e in events] == [TicketFlagged, TicketEscalated]
    assert t.next_deadline() is None


def test_an_answered_ticket_owes_nothing() -> None:
    t = ticket()
    t.approve("agent-1", T0 + 47 * H)
    assert t.apply_sla(T0 + 100 * H) == []
    assert t.next_deadline() is None
    assert colour(t.sla_marks, T0 + 100 * H) is Colour.GREEN


def test_the_next_deadline_moves_from_the_respond_limit_to_the_escalation_then_none() -> None:
    marks = SlaMarks(T0)
    assert next_deadline(marks) == T0 + 48 * H
    assert next_deadline(SlaMarks(T0, flagged_at=T0 + 48 * H)) == T0 + 72 * H
    assert next_deadline(SlaMarks(T0, flagged_at=T0 + 48 * H, escalated_at=T0 + 72 * H)) is None
    t = ticket()
    assert t.next_deadline() == T0 + 48 * H
    t.apply_sla(T0 + 48 * H)
    assert t.next_deadline() == T0 + 72 * H


def test_colour_is_green_then_amber_from_75_percent_then_red_when_overdue() -> None:
    marks = SlaMarks(T0)
    assert colour(marks, T0 + 36 * H - timedelta(seconds=1)) is Colour.GREEN
    assert colour(marks, T0 + 36 * H) is Colour.AMBER
    assert colour(marks, T0 + 48 * H - timedelta(seconds=1)) is Colour.AMBER
    assert colour(marks, T0 + 48 * H) is Colour.RED
    assert colour(marks, T0 + 12 * H, SlaPolicy(respond_within=24 * H, amber_percent=50)) is Colour.AMBER


def test_the_limits_are_a_policy() -> None:
    quick = SlaPolicy(respond_within=4 * H, escalate_after=8 * H)
    assert due(SlaMarks(T0), T0 + 4 * H, quick) is Due.FLAG
    assert due(SlaMarks(T0, flagged_at=T0 + 4 * H), T0 + 8 * H, quick) is Due.ESCALATE
    with pytest.raises(InvalidArgument) as invalid:
        SlaPolicy(respond_within=10 * H, escalate_after=5 * H)
    assert invalid.value.field == "escalate_after"
    with pytest.raises(InvalidArgument):
        SlaPolicy(amber_percent=0)


def test_holding_the_next_order_is_off_by_default_and_needs_an_overdue_open_ticket() -> None:
    overdue = SlaMarks(T0)
    now = T0 + 49 * H
    assert DEFAULT_SLA.hold_next_order is False
    assert holds_next_order(DEFAULT_SLA, [overdue], now) is False
    hold = SlaPolicy(hold_next_order=True)
    assert holds_next_order(hold, [overdue], now) is True
    assert holds_next_order(hold, [overdue], T0 + 47 * H) is False
    assert holds_next_order(hold, [SlaMarks(T0, answered_at=T0 + H)], now) is False
    assert holds_next_order(hold, [], now) is False
