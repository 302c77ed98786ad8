"""Auto-approval: declarative, versioned rule sets (draft, dry run against past tickets, activate),
like routing's.

A rule set is a list of rules read top to bottom; the first rule whose conditions all hold decides
(APPROVE: approved without a person; REVIEW: into the review queue). No rule holding: REVIEW. A rule
with no conditions holds for every ticket (a catch-all). Every decision records the rule set's
version, the rule that decided and each condition tried on the way with whether it held and what was
observed, so an approval can be explained later.

Conditions (all optional, keys of a rule's `conditions`):
- `signed_within_days`: int ≥ 0: the order was signed for at most this many days before the decision;
- `not_customised`: true: no line of the ticket is customised (a line orders does not know about
  counts as customised: unknown does not approve);
- `no_damage_reported`: true: the customer reported no damage;
- `max_amount_minor`: int ≥ 0: the refund's value, money plus points, at most this (minor units);
- `kinds`, `reasons`, `channels`: non-empty lists: the ticket's kind / reason / channel is one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.reasons import Reason
from services.kit.errors import FailedPrecondition, InvalidArgument

DAY = timedelta(days=1)


class Outcome(StrEnum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"


@dataclass(frozen=True)
class Conditions:
    signed_within_days: int | None = None
    not_customised: bool = False
    no_damage_reported: bool = False
    max_amount_minor: int | None = None
    kinds: tuple[TicketKind, ...] = ()
    reasons: tuple[Reason, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: Conditions
    outcome: Outcome


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class TicketFacts:
    """What the rules look at, as the ticket stood when it was decided."""

    ticket_id: str
    kind: TicketKind
    reason: Reason
    channel: str
    signed_at: datetime | None
    # True if any line of the ticket is customised, None if some line is not known
    customised: bool | None
    damage_reported: bool
    # the refund's value: money plus points, minor units
    amount_minor: int


@dataclass(frozen=True)
class ConditionCheck:
    rule: str
    condition: str
    expected: str
    observed: str
    held: bool


@dataclass(frozen=True)
class Decision:
    approved: bool
    rule_set_version: int
    # the rule that decided; "" when none held (REVIEW by default)
    rule: str
    outcome: Outcome
    checks: tuple[ConditionCheck, ...]

    @property
    def held(self) -> tuple[str, ...]:
        """The conditions of the deciding rule that held (all of them, when a rule decided)."""
        return tuple(c.condition for c in self.checks if c.rule == self.rule and c.held)


def _checks(rule: Rule, facts: TicketFacts, now: datetime) -> list[ConditionCheck]:
    c = rule.conditions
    out: list[ConditionCheck] = []

    def add(condition: str, expected: str, observed: str, held: bool) -> None:
        out.append(ConditionCheck(rule.name, condition, expected, observed, held))

    if c.signed_within_days is not None:
        if facts.signed_at is None:
            add("signed_within_days", f"≤ {c.signed_within_days} days", "not signed for", False)
        else:
            since = now - facts.signed_at
            hours = int(since.total_seconds() // 3600)
            held = timedelta(0) <= since <= c.signed_within_days * DAY
            add("signed_within_days", f"≤ {c.signed_within_days} days", f"signed {hours} h ago", held)
    if c.not_customised:
        observed = {True: "customised", False: "not customised", None: "unknown"}[facts.customised]
        add("not_customised", "not customised", observed, facts.customised is False)
    if c.no_damage_reported:
        observed = "damage reported" if facts.damage_reported else "no damage reported"
        add("no_damage_reported", "no damage reported", observed, not facts.damage_reported)
    if c.max_amount_minor is not None:
        add(
            "max_amount_minor",
            f"≤ {c.max_amount_minor}",
            str(facts.amount_minor),
            facts.amount_minor <= c.max_amount_minor,
        )
    if c.kinds:
        add("kinds", " | ".join(c.kinds), facts.kind.value, facts.kind in c.kinds)
    if c.reasons:
        add("reasons", " | ".join(c.reasons), facts.reason.value, facts.reason in c.reasons)
    if c.channels:
        add("channels", " | ".join(c.channels), facts.channel, facts.channel in c.channels)
    return out


def evaluate(rule_set: RuleSet, facts: TicketFacts, now: datetime) -> Decision:
    """The first rule whose conditions all hold decides; none: REVIEW. Every check tried is kept."""
    trail: list[ConditionCheck] = []
    for rule in rule_set.rules:
        checks = _checks(rule, facts, now)
        trail.extend(checks)
        if all(check.held for check in checks):
            return Decision(
                rule.outcome is Outcome.APPROVE, rule_set.version, rule.name, rule.outcome, tuple(trail)
            )
    return Decision(False, rule_set.version, "", Outcome.REVIEW, tuple(trail))


# ---- documents: how operations write rule sets and how they are stored


def _non_negative_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(where, "must be a non-negative integer")
    return value


def _true(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(where, "must be true or false (false: no such condition)")
    return value


def _choices(value: Any, where: str, parse: Any, known: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidArgument(where, "must be a non-empty list")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(parse(item))
        except (ValueError, TypeError):
            raise InvalidArgument(f"{where}[{index}]", f"must be one of {known}") from None
    return tuple(out)


def _channel(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return value


def _conditions(raw: Any, where: str) -> Conditions:
    if not isinstance(raw, dict):
        raise InvalidArgument(where, "must be an object")
    known = {
        "signed_within_days",
        "not_customised",
        "no_damage_reported",
        "max_amount_minor",
        "kinds",
        "reasons",
        "channels",
    }
    for key in raw:
        if key not in known:
            raise InvalidArgument(f"{where}.{key}", f"is not a known condition ({', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key in ("signed_within_days", "max_amount_minor"):
        if key in raw:
            values[key] = _non_negative_int(raw[key], f"{where}.{key}")
    for key in ("not_customised", "no_damage_reported"):
        if key in raw:
            values[key] = _true(raw[key], f"{where}.{key}")
    if "kinds" in raw:
        values["kinds"] = _choices(
            raw["kinds"], f"{where}.kinds", TicketKind, ", ".join(k.value for k in TicketKind)
        )
    if "reasons" in raw:
        values["reasons"] = _choices(
            raw["reasons"], f"{where}.reasons", Reason, ", ".join(r.value for r in Reason)
        )
    if "channels" in raw:
        values["channels"] = _choices(raw["channels"], f"{where}.channels", _channel, "a channel name")
    return Conditions(**values)


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def parse_rule_set(version: int, document: Any, where: str = "") -> RuleSet:
    """A rule set from a plain dict (as an outer layer read it from JSON or YAML): `{"rules": [{"name",
    "conditions", "outcome"}, …]}`. Every problem names its path, e.g. `rules[2].conditions.max_amount_minor`
    (under `where`, when the document is itself a field of a request)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidArgument("version", "must be a non-negative integer")
    if not isinstance(document, dict):
        raise InvalidArgument(where or "document", "must be an object")
    for key in document:
        if key != "rules":
            raise InvalidArgument(_path(where, key), "is not a known field (a rule set has rules)")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list):
        raise InvalidArgument(_path(where, "rules"), "must be a list")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_rules):
        at = _path(where, f"rules[{index}]")
        if not isinstance(raw, dict):
            raise InvalidArgument(at, "must be an object")
        for key in raw:
            if key not in ("name", "conditions", "outcome"):
                raise InvalidArgument(f"{at}.{key}", "is not a known field (name, conditions, outcome)")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"{at}.name", "is required")
        if name in names:
            raise InvalidArgument(f"{at}.name", f"{name} names an earlier rule too")
        names.add(name)
        outcome_raw = raw.get("outcome", Outcome.APPROVE.value)
        try:
            outcome = Outcome(str(outcome_raw).upper())
        except ValueError:
            raise InvalidArgument(f"{at}.outcome", "must be APPROVE or REVIEW") from None
        rules.append(Rule(name, _conditions(raw.get("conditions", {}), f"{at}.conditions"), outcome))
    return RuleSet(version, tuple(rules))


def to_document(rule_set: RuleSet) -> dict[str, Any]:
    """The plain dict `parse_rule_set` reads back to the same rule set."""
    rules = []
    for rule in rule_set.rules:
        c = rule.conditions
        conditions: dict[str, Any] = {}
        if c.signed_within_days is not None:
            conditions["signed_within_days"] = c.signed_within_days
        if c.not_customised:
            conditions["not_customised"] = True
        if c.no_damage_reported:
            conditions["no_damage_reported"] = True
        if c.max_amount_minor is not None:
            conditions["max_amount_minor"] = c.max_amount_minor
        if c.kinds:
            conditions["kinds"] = [k.value for k in c.kinds]
        if c.reasons:
            conditions["reasons"] = [r.value for r in c.reasons]
        if c.channels:
            conditions["channels"] = list(c.channels)
        rules.append({"name": rule.name, "conditions": conditions, "outcome": rule.outcome.value})
    return {"rules": rules}


# DOMAIN §6: signed within 7 days, not customised, no damage reported, under 200.00 CNY ⇒ approved
DEFAULT_DOCUMENT: dict[str, Any] = {
    "rules": [
        {
            "name": "signed_recently_small_undamaged",
            "conditions": {
                "signed_within_days": 7,
                "not_customised": True,
                "no_damage_reported": True,
                "max_amount_minor": 20000,
            },
            "outcome": "APPROVE",
        }
    ]
}


def default_rule_set() -> RuleSet:
    return parse_rule_set(1, DEFAULT_DOCUMENT)


# ---- versions: draft, dry run, activate


class RuleSetStatus(StrEnum):
    """A draft may be activated; activating it retires the active one."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class RuleSetVersion:
    """A rule set as stored: its document (read with `parse_rule_set`) and its life."""

    version: int
    status: RuleSetStatus
    document: dict[str, Any]
    note: str
    created_at: datetime
    activated_at: datetime | None = None

    def rule_set(self) -> RuleSet:
        return parse_rule_set(self.version, self.document)


def draft(version: int, document: Any, note: str, now: datetime) -> RuleSetVersion:
    """A new draft, checked: a document that does not parse is refused naming the bad path."""
    parse_rule_set(version, document)
    return RuleSetVersion(version, RuleSetStatus.DRAFT, document, note, now)


def activate(
    candidate: RuleSetVersion, active: RuleSetVersion | None, now: datetime
) -> tuple[RuleSetVersion, RuleSetVersion | None]:
    """The draft made active and the active one retired; only a draft can be activated."""
    if candidate.status is not RuleSetStatus.DRAFT:
        raise FailedPrecondition(
            f"rule set {candidate.version} is {candidate.status.value}; only a draft can be activated"
        )
    candidate.rule_set()
    activated = RuleSetVersion(
        candidate.version, RuleSetStatus.ACTIVE, candidate.document, candidate.note, candidate.created_at, now
    )
    retired = None
    if active is not None:
        retired = RuleSetVersion(
            active.version,
            RuleSetStatus.RETIRED,
            active.document,
            active.note,
            active.created_at,
            active.activated_at,
        )
    return activated, retired


@dataclass(frozen=True)
class PastTicket:
    """A ticket decided before: its facts and when it was decided (rules read time from then)."""

    facts: TicketFacts
    decided_at: datetime


@dataclass(frozen=True)
class ChangedDecision:
    ticket_id: str
    before: Decision
    after: Decision


@dataclass(frozen=True)
class DryRun:
    draft_version: int
    active_version: int
    replayed: int
    approved_by_active: int
    approved_by_draft: int
    changed: tuple[ChangedDecision, ...]

    @property
    def newly_approved(self) -> int:
        return sum(1 for c in self.changed if c.after.approved)

    @property
    def no_longer_approved(self) -> int:
        return sum(1 for c in self.changed if not c.after.approved)


def dry_run(candidate: RuleSet, active: RuleSet, past: Sequence[PastTicket]) -> DryRun:
    """Past tickets decided by both the active rule set and the draft: which would change decision
    (approved ↔ review), each with both decisions' trails."""
    changed: list[ChangedDecision] = []
    approved_active = approved_draft = 0
    for ticket in past:
        before = evaluate(active, ticket.facts, ticket.decided_at)
        after = evaluate(candidate, ticket.facts, ticket.decided_at)
        approved_active += before.approved
        approved_draft += after.approved
        if before.approved != after.approved:
            changed.append(ChangedDecision(ticket.facts.ticket_id, before, after))
    return DryRun(
        candidate.version, active.version, len(past), approved_active, approved_draft, tuple(changed)
    )
