from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from services.aftersales.domain.approval import (
    DEFAULT_DOCUMENT,
    Outcome,
    PastTicket,
    RuleSetStatus,
    TicketFacts,
    activate,
    default_rule_set,
    draft,
    dry_run,
    evaluate,
    parse_rule_set,
    to_document,
)
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.reasons import Reason
from services.kit.errors import FailedPrecondition, InvalidArgument
from tests.unit.aftersales.builders import T0

SIGNED = T0 - timedelta(days=2)


def facts(**changes: Any) -> TicketFacts:
    values: dict[str, Any] = {
        "ticket_id": "t-1",
        "kind": TicketKind.RETURN_AND_REFUND,
        "reason": Reason.SIZE_FIT,
        "channel": "OWN_SHOP",
        "signed_at": SIGNED,
        "customised": False,
        "damage_reported": False,
        "amount_minor": 12_345,
    }
    values.update(changes)
    return TicketFacts(**values)


def document(**conditions: Any) -> dict[str, Any]:
    return {"rules": [{"name": "r", "conditions": conditions, "outcome": "APPROVE"}]}


# ---- parsing


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "document"),
        ({"rules": {}}, "rules"),
        ({"rules": [], "extra": 1}, "extra"),
        ({"rules": ["x"]}, "rules[0]"),
        ({"rules": [{"conditions": {}}]}, "rules[0].name"),
        ({"rules": [{"name": "a"}, {"name": "a"}]}, "rules[1].name"),
        ({"rules": [{"name": "a", "outcome": "REJECT"}]}, "rules[0].outcome"),
        ({"rules": [{"name": "a", "when": {}}]}, "rules[0].when"),
        ({"rules": [{"name": "a", "conditions": []}]}, "rules[0].conditions"),
        ({"rules": [{"name": "a", "conditions": {"colour": "red"}}]}, "rules[0].conditions.colour"),
        (
            {"rules": [{"name": "a"}, {"name": "b"}, {"name": "c", "conditions": {"max_amount_minor": -1}}]},
            "rules[2].conditions.max_amount_minor",
        ),
        (
            {"rules": [{"name": "a", "conditions": {"max_amount_minor": 19.9}}]},
            "rules[0].conditions.max_amount_minor",
        ),
        (
            {"rules": [{"name": "a", "conditions": {"signed_within_days": True}}]},
            "rules[0].conditions.signed_within_days",
        ),
        (
            {"rules": [{"name": "a", "conditions": {"not_customised": "yes"}}]},
            "rules[0].conditions.not_customised",
        ),
        ({"rules": [{"name": "a", "conditions": {"kinds": []}}]}, "rules[0].conditions.kinds"),
        (
            {"rules": [{"name": "a", "conditions": {"kinds": ["EXCHANGE", "SWAP"]}}]},
            "rules[0].conditions.kinds[1]",
        ),
        ({"rules": [{"name": "a", "conditions": {"reasons": ["bored"]}}]}, "rules[0].conditions.reasons[0]"),
        ({"rules": [{"name": "a", "conditions": {"channels": [""]}}]}, "rules[0].conditions.channels[0]"),
    ],
)
def test_a_bad_document_is_refused_naming_the_path_of_the_bad_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidArgument) as invalid:
        parse_rule_set(2, raw)
    assert invalid.value.field == field


def test_paths_are_under_the_requests_field_when_given() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        parse_rule_set(2, document(max_amount_minor="lots"), where="document_json")
    assert invalid.value.field == "document_json.rules[0].conditions.max_amount_minor"


def test_a_document_reads_back_to_the_same_rule_set() -> None:
    raw = {
        "rules": [
            {
                "name": "all",
                "conditions": {
                    "signed_within_days": 3,
                    "not_customised": True,
                    "no_damage_reported": True,
                    "max_amount_minor": 5000,
                    "kinds": ["REFUND_ONLY"],
                    "reasons": ["wrong_item", "damaged"],
                    "channels": ["OWN_SHOP"],
                },
                "outcome": "REVIEW",
            },
            {"name": "rest", "conditions": {}, "outcome": "APPROVE"},
        ]
    }
    parsed = parse_rule_set(4, raw)
    assert to_document(parsed) == raw
    assert parse_rule_set(4, to_document(parsed)) == parsed
    assert parsed.rules[0].outcome is Outcome.REVIEW


# ---- evaluation


def test_the_default_rule_set_approves_a_small_recent_undamaged_ordinary_item() -> None:
    decision = evaluate(default_rule_set(), facts(), T0)
    assert decision.approved and decision.rule_set_version == 1
    assert decision.rule == "signed_recently_small_undamaged"
    assert set(decision.held) == {
        "signed_within_days",
        "not_customised",
        "no_damage_reported",
        "max_amount_minor",
    }
    observed = {c.condition: c.observed for c in decision.checks}
    assert observed["signed_within_days"] == "signed 48 h ago"
    assert observed["max_amount_minor"] == "12345"


@pytest.mark.parametrize(
    ("changes", "failing", "observed"),
    [
        ({"signed_at": T0 - timedelta(days=7, seconds=1)}, "signed_within_days", "signed 168 h ago"),
        ({"signed_at": None}, "signed_within_days", "not signed for"),
        ({"customised": True}, "not_customised", "customised"),
        ({"customised": None}, "not_customised", "unknown"),
        ({"damage_reported": True}, "no_damage_reported", "damage reported"),
        ({"amount_minor": 20_001}, "max_amount_minor", "20001"),
    ],
)
def test_each_condition_that_fails_sends_the_ticket_to_review_saying_what_was_seen(
    changes: dict[str, Any], failing: str, observed: str
) -> None:
    decision = evaluate(default_rule_set(), facts(**changes), T0)
    assert not decision.approved and decision.outcome is Outcome.REVIEW and decision.rule == ""
    failed = [c for c in decision.checks if not c.held]
    assert [(c.condition, c.observed) for c in failed] == [(failing, observed)]


def test_the_limits_themselves_still_hold() -> None:
    assert evaluate(
        default_rule_set(), facts(signed_at=T0 - timedelta(days=7), amount_minor=20_000), T0
    ).approved


def test_the_first_rule_that_holds_decides_and_the_trail_keeps_the_rules_tried() -> None:
    rules = parse_rule_set(
        3,
        {
            "rules": [
                {"name": "big_goes_to_review", "conditions": {"max_amount_minor": 1000}, "outcome": "REVIEW"},
                {"name": "merchant_fault", "conditions": {"reasons": ["wrong_item"]}, "outcome": "APPROVE"},
                {"name": "everything_else", "outcome": "REVIEW"},
            ]
        },
    )
    wrong = evaluate(rules, facts(reason=Reason.WRONG_ITEM), T0)
    assert wrong.approved and wrong.rule == "merchant_fault"
    assert [(c.rule, c.held) for c in wrong.checks] == [
        ("big_goes_to_review", False),
        ("merchant_fault", True),
    ]
    small = evaluate(rules, facts(amount_minor=500, reason=Reason.WRONG_ITEM), T0)
    assert not small.approved and small.rule == "big_goes_to_review"
    other = evaluate(rules, facts(), T0)
    assert not other.approved and other.rule == "everything_else"


def test_kinds_and_channels_restrict_a_rule() -> None:
    rules = parse_rule_set(5, document(kinds=["EXCHANGE"], channels=["POS"]))
    assert not evaluate(rules, facts(channel="POS"), T0).approved
    assert evaluate(rules, facts(kind=TicketKind.EXCHANGE, channel="POS"), T0).approved


# ---- versions and dry runs


def test_a_draft_is_checked_activated_and_the_active_one_retired() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        draft(2, document(max_amount_minor=-5), "too strict", T0)
    assert invalid.value.field == "rules[0].conditions.max_amount_minor"
    active = draft(1, DEFAULT_DOCUMENT, "default", T0)
    active, _ = activate(active, None, T0)
    candidate = draft(2, document(max_amount_minor=50_000), "more generous", T0)
    assert candidate.status is RuleSetStatus.DRAFT
    later = T0 + timedelta(hours=1)
    activated, retired = activate(candidate, active, later)
    assert activated.status is RuleSetStatus.ACTIVE and activated.activated_at == later
    assert retired is not None and retired.status is RuleSetStatus.RETIRED and retired.version == 1
    assert activated.rule_set().version == 2
    with pytest.raises(FailedPrecondition):
        activate(activated, retired, later)


def test_a_dry_run_tells_how_many_past_tickets_would_change_decision() -> None:
    generous = copy.deepcopy(DEFAULT_DOCUMENT)
    generous["rules"][0]["conditions"]["max_amount_minor"] = 50_000
    candidate = parse_rule_set(2, generous)
    past = [
        PastTicket(facts(ticket_id="small", amount_minor=10_000), T0),
        PastTicket(facts(ticket_id="mid", amount_minor=30_000), T0),
        PastTicket(facts(ticket_id="huge", amount_minor=90_000), T0),
        # signed 2 days before it was decided, a month ago: the replay reads the time it was decided
        PastTicket(
            facts(ticket_id="old", amount_minor=30_000, signed_at=T0 - timedelta(days=32)),
            T0 - timedelta(days=30),
        ),
    ]
    report = dry_run(candidate, default_rule_set(), past)
    assert report.replayed == 4
    assert report.approved_by_active == 1 and report.approved_by_draft == 3
    assert sorted(c.ticket_id for c in report.changed) == ["mid", "old"]
    assert report.newly_approved == 2 and report.no_longer_approved == 0
    assert (report.draft_version, report.active_version) == (2, 1)
