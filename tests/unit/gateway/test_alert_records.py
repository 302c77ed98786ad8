"""Alert records' pure rules: the fold key, the state machine, routing and escalation times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.config import alert_routes
from services.gateway.domain.alert_records import (
    AlertState,
    Raised,
    Recipient,
    Route,
    Severity,
    acknowledged,
    check_transition,
    default_routes,
    escalated,
    escalation_due,
    fold_key,
    opened,
    parse_routes,
    resolved,
    route_for,
)
from services.kit.config import InvalidSetting
from services.kit.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)
CHAIN = (Recipient(role="ops", phone="13800000001"), Recipient(person="li.lei"), Recipient(role="admin"))


def raised(kind: str = "order_exception", severity: int = Severity.HIGH, dedupe_key: str = "") -> Raised:
    return Raised("ev-1", kind, severity, "orders", "o-1", "stuck", dedupe_key, "", "", (), NOW)


def test_the_fold_key_is_the_dedupe_key_else_kind_order_and_source() -> None:
    assert fold_key("orders:o-1:stuck", "order_exception", "o-1", "orders") == "orders:o-1:stuck"
    assert fold_key("", "order_exception", "o-1", "orders") == "order_exception|o-1|orders"
    assert fold_key("", "low_stock", "", "inventory") != fold_key("", "low_stock", "", "routing")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (AlertState.OPEN, AlertState.ACKNOWLEDGED),
        (AlertState.OPEN, AlertState.RESOLVED),
        (AlertState.ACKNOWLEDGED, AlertState.RESOLVED),
    ],
)
def test_an_alert_is_acknowledged_then_resolved_or_resolved_at_once(
    current: AlertState, target: AlertState
) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (AlertState.ACKNOWLEDGED, AlertState.ACKNOWLEDGED),
        (AlertState.RESOLVED, AlertState.RESOLVED),
        (AlertState.RESOLVED, AlertState.ACKNOWLEDGED),
        (AlertState.RESOLVED, AlertState.OPEN),
        (AlertState.ACKNOWLEDGED, AlertState.OPEN),
    ],
)
def test_every_other_transition_is_refused(current: AlertState, target: AlertState) -> None:
    with pytest.raises(FailedPrecondition):
        check_transition(current, target)


def test_the_first_route_the_alert_meets_by_kind_pattern_and_severity_wins() -> None:
    stock = Route(("inventory_*", "low_stock"), Severity.MEDIUM, (Recipient(role="warehouse_supervisor"),))
    anything = Route(("*",), 0, (Recipient(role="ops"),))

    assert route_for((stock, anything), "low_stock", Severity.MEDIUM) is stock
    assert route_for((stock, anything), "inventory_invariant_breached", Severity.CRITICAL) is stock
    assert route_for((stock, anything), "low_stock", Severity.LOW) is anything
    assert route_for((stock, anything), "order_exception", Severity.CRITICAL) is anything
    assert route_for((stock,), "order_exception", Severity.CRITICAL) is None


def test_by_default_high_alerts_escalate_from_ops_to_the_supervisor_and_low_ones_do_not() -> None:
    routes = default_routes(TEN_MINUTES)

    high = route_for(routes, "paid_out_of_stock", Severity.HIGH)
    low = route_for(routes, "reservation_expired", Severity.LOW)
    assert high is not None and [r.label for r in high.chain][:2] == ["role:ops", "role:supervisor"]
    assert high.escalate_after == TEN_MINUTES
    assert low is not None and low.escalate_after is None
    assert route_for(routes, "unknown", 0) is not None


def test_escalation_is_due_after_the_delay_while_someone_is_left_in_the_chain() -> None:
    assert escalation_due(CHAIN, 0, TEN_MINUTES, NOW) == NOW + TEN_MINUTES
    assert escalation_due(CHAIN, 1, TEN_MINUTES, NOW) == NOW + TEN_MINUTES
    assert escalation_due(CHAIN, 2, TEN_MINUTES, NOW) is None
    assert escalation_due(CHAIN, 0, None, NOW) is None


def test_an_opened_alert_goes_to_the_first_of_its_chain_and_escalates_down_it() -> None:
    record = opened("a-1", raised(), Route(("*",), Severity.HIGH, CHAIN, TEN_MINUTES))
    assert (record.assigned_to, record.level, record.escalate_at) == ("role:ops", 0, NOW + TEN_MINUTES)

    later = NOW + TEN_MINUTES
    second = escalated(record, later)
    assert (second.assigned_to, second.level, second.escalate_at) == ("person:li.lei", 1, later + TEN_MINUTES)
    third = escalated(second, later + TEN_MINUTES)
    assert (third.assigned_to, third.escalate_at) == ("role:admin", None)
    with pytest.raises(FailedPrecondition):
        escalated(third, later + 2 * TEN_MINUTES)


def test_an_alert_no_route_matches_is_recorded_for_nobody_and_never_escalates() -> None:
    record = opened("a-1", raised(), None)

    assert (record.assigned_to, record.escalate_at, record.count) == ("", None, 1)


def test_acknowledging_records_who_and_when_and_stops_escalation() -> None:
    record = opened("a-1", raised(), Route(("*",), Severity.HIGH, CHAIN, TEN_MINUTES))
    at = NOW + timedelta(minutes=3)

    acked = acknowledged(record, "li.lei", " on it ", at)

    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (
        AlertState.ACKNOWLEDGED,
        "li.lei",
        at,
    )
    assert (acked.acknowledge_note, acked.escalate_at) == ("on it", None)
    with pytest.raises(FailedPrecondition):
        escalated(acked, at)
    with pytest.raises(FailedPrecondition):
        acknowledged(acked, "someone", "", at)


def test_resolving_records_who_when_and_how_and_a_resolved_alert_stays_resolved() -> None:
    record = opened("a-1", raised(), None)

    done = resolved(record, "han.mei", "restocked", NOW)

    assert (done.state, done.resolved_by, done.resolved_at, done.resolution) == (
        AlertState.RESOLVED,
        "han.mei",
        NOW,
        "restocked",
    )
    with pytest.raises(FailedPrecondition):
        resolved(done, "han.mei", "again", NOW)
    with pytest.raises(FailedPrecondition):
        acknowledged(done, "han.mei", "", NOW)


def test_a_note_too_long_is_refused_naming_its_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        resolved(opened("a-1", raised(), None), "x", "n" * 501, NOW)
    assert refused.value.field == "resolution"


def test_routes_are_read_from_json_with_the_default_delay() -> None:
    routes = parse_routes(
        '[{"kinds": ["inventory_*"], "min_severity": "critical",'
        ' "chain": [{"role": "ops", "phone": "+8613800000001"}, {"person": "li.lei"}]},'
        ' {"kinds": "*", "chain": [{"role": "ops"}], "escalate_after_s": 0}]',
        TEN_MINUTES,
    )

    assert routes[0].min_severity == Severity.CRITICAL
    assert routes[0].chain == (Recipient(role="ops", phone="+8613800000001"), Recipient(person="li.lei"))
    assert routes[0].escalate_after == TEN_MINUTES
    assert (routes[1].kinds, routes[1].min_severity, routes[1].escalate_after) == (("*",), 1, None)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("{", "not JSON"),
        ("[]", "non-empty"),
        ('[{"chain": []}]', "routes[0].chain"),
        ('[{"chain": [{"role": "ops", "person": "x"}]}]', "routes[0].chain[0]"),
        ('[{"chain": [{"role": "ops", "phone": "call me"}]}]', "routes[0].chain[0].phone"),
        ('[{"min_severity": "urgent", "chain": [{"role": "ops"}]}]', "routes[0].min_severity"),
        ('[{"escalate_after_s": -1, "chain": [{"role": "ops"}]}]', "routes[0].escalate_after_s"),
    ],
)
def test_a_bad_route_setting_is_refused_naming_where(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_routes(text, TEN_MINUTES)


def test_the_gateways_routes_setting_defaults_and_refuses_a_bad_one_naming_it() -> None:
    defaults = alert_routes({"ALERT_ESCALATE_AFTER_S": "30"})
    assert defaults[0].escalate_after == timedelta(seconds=30)

    with pytest.raises(InvalidSetting, match="ALERT_ROUTES"):
        alert_routes({"ALERT_ROUTES": '[{"chain": []}]'})
    with pytest.raises(InvalidSetting, match="ALERT_ESCALATE_AFTER_S"):
        alert_routes({"ALERT_ESCALATE_AFTER_S": "0"})


@given(st.lists(st.sampled_from(["ack", "resolve", "escalate"]), max_size=12))
def test_whatever_people_and_the_clock_do_a_record_only_moves_forward(actions: list[str]) -> None:
    record = opened("a-1", raised(), Route(("*",), Severity.HIGH, CHAIN, TEN_MINUTES))
    at = NOW
    order = [AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.RESOLVED]
    for action in actions:
        at += TEN_MINUTES
        before = record
        try:
            if action == "ack":
                record = acknowledged(record, "x", "", at)
            elif action == "resolve":
                record = resolved(record, "x", "", at)
            else:
                record = escalated(record, at)
        except FailedPrecondition:
            # refused only where the rules refuse: leaving RESOLVED, acknowledging twice, escalating a
            # record that is not open or has nobody left to move to
            refused = {
                "ack": before.state is not AlertState.OPEN,
                "resolve": before.state is AlertState.RESOLVED,
                "escalate": before.state is not AlertState.OPEN or before.level + 1 >= len(before.chain),
            }
            assert refused[action], (action, before.state, before.level)
            continue
        assert order.index(record.state) >= order.index(before.state)
        assert record.level >= before.level
        assert record.state is AlertState.OPEN or record.escalate_at is None
        assert record.state is not AlertState.RESOLVED or before.state is not AlertState.RESOLVED
