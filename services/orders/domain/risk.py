"""The risk rule engine: rule sets as documents (versioned, drafted, dry-run, activated), their
conditions parsed into a small tree and interpreted over an order's facts — never evaluated as code.

A condition is JSON:

    {"all": [c, …]}   {"any": [c, …]}   {"not": c}
    {"fact": "amount_minor", "op": ">", "value": 50000}
    {"fact": "address", "op": "contains_any", "value": ["hotel", "网吧"]}

with the operators `>`, `>=`, `<`, `<=`, `==`, `!=` on numbers, `==`/`!=` on booleans and
`contains_any` (case-insensitive substrings) on text. Each rule says what a hit does: `hold` (held for
the `risk` review queue), `lock` (held, and operations told), `score` (adds to the order's score; at
the rule set's `freeze_score` the order is held as frozen) or `alert` (told, nothing held). An
evaluation keeps every rule's facts — what it saw — whether it hit or not, so a dry run replays new
rules on the facts of the last orders. Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from services.orders.domain import masking, model

# the facts an order is judged on, with their type; computed for every order (handlers.risk)
FACTS: Final[Mapping[str, type]] = {
    "amount_minor": int,  # what the buyer pays, in fen
    "address": str,  # province, city, district and street detail, as one text
    "max_line_discount_pct": float,  # the largest line discount (item discount + promotion) of its price
    "campaign": bool,  # the order carries a promotion naming its campaign
    "phone_orders_1h": int,  # orders to this phone in the hour up to this one, this one included
    "phone_addresses_1h": int,  # distinct delivery districts among them
    "channel": str,
}
MAX_RULES = 100
MAX_DEPTH = 8
MAX_LIST = 200
NUMERIC_OPS: Final = {">", ">=", "<", "<=", "==", "!="}


class InvalidRiskRules(ValueError):
    """The rule set document is not usable: `path` names where."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class Action(StrEnum):
    HOLD = "hold"
    LOCK = "lock"
    SCORE = "score"
    ALERT = "alert"


class Outcome(StrEnum):
    PASSED = "passed"  # nothing held
    HELD = "held"  # held for review (a hold or lock rule hit, or the score reached freeze_score)


# ---- facts ----------------------------------------------------------------------------------------


def order_facts(order: model.Order, phone_orders_1h: int, phone_addresses_1h: int) -> dict[str, Any]:
    """What the rules judge an order on; the phone's recent orders come from the store."""
    address = order.shipping_address
    worst = 0.0
    for line, share in zip(order.lines, order.shares, strict=False):
        price = line.unit_price_minor * line.quantity
        if price > 0:
            worst = max(worst, (line.discount_minor + share.promotion_minor) * 100 / price)
    campaign = any(
        item.kind is model.DiscountKind.PROMOTION and bool(item.reference.strip()) for item in order.discounts
    )
    return {
        "amount_minor": order.payable_minor,
        "address": " ".join(
            part for part in (address.province, address.city, address.district, address.detail) if part
        ),
        "max_line_discount_pct": round(worst, 2),
        "campaign": campaign,
        "phone_orders_1h": phone_orders_1h,
        "phone_addresses_1h": phone_addresses_1h,
        "channel": order.channel.value,
    }


# ---- conditions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    fact: str
    op: str
    value: Any

    def test(self, facts: Mapping[str, Any]) -> bool:
        seen = facts.get(self.fact)
        if seen is None:
            return False
        if self.op == "contains_any":
            text = str(seen).casefold()
            return any(word in text for word in self.value)
        match self.op:
            case ">":
                return bool(seen > self.value)
            case ">=":
                return bool(seen >= self.value)
            case "<":
                return bool(seen < self.value)
            case "<=":
                return bool(seen <= self.value)
            case "==":
                return bool(seen == self.value)
            case _:
                return bool(seen != self.value)

    def facts(self) -> set[str]:
        return {self.fact}

    def matched(self, facts: Mapping[str, Any]) -> dict[str, list[str]]:
        """The words of a contains_any found in the text (what it saw, without the text itself)."""
        if self.op != "contains_any" or facts.get(self.fact) is None:
            return {}
        text = str(facts[self.fact]).casefold()
        return {self.fact: [word for word in self.value if word in text]}


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]

    def test(self, facts: Mapping[str, Any]) -> bool:
        return all(part.test(facts) for part in self.parts)

    def facts(self) -> set[str]:
        return set().union(*(part.facts() for part in self.parts))

    def matched(self, facts: Mapping[str, Any]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for part in self.parts:
            for fact, words in part.matched(facts).items():
                found.setdefault(fact, []).extend(w for w in words if w not in found.get(fact, []))
        return found


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def test(self, facts: Mapping[str, Any]) -> bool:
        return any(part.test(facts) for part in self.parts)

    def facts(self) -> set[str]:
        return set().union(*(part.facts() for part in self.parts))

    def matched(self, facts: Mapping[str, Any]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for part in self.parts:
            for fact, words in part.matched(facts).items():
                found.setdefault(fact, []).extend(w for w in words if w not in found.get(fact, []))
        return found


@dataclass(frozen=True)
class Not:
    part: Condition

    def test(self, facts: Mapping[str, Any]) -> bool:
        return not self.part.test(facts)

    def facts(self) -> set[str]:
        return self.part.facts()

    def matched(self, facts: Mapping[str, Any]) -> dict[str, list[str]]:
        return self.part.matched(facts)


Condition = Compare | All | AnyOf | Not


def parse_condition(node: object, path: str, depth: int = 0) -> Condition:
    if depth > MAX_DEPTH:
        raise InvalidRiskRules(path, f"conditions nest at most {MAX_DEPTH} deep")
    if not isinstance(node, Mapping) or not node:
        raise InvalidRiskRules(path, "a condition is an object: all, any, not, or fact/op/value")
    if set(node) in ({"all"}, {"any"}):
        key = next(iter(node))
        parts = node[key]
        if not isinstance(parts, list) or not parts or len(parts) > MAX_LIST:
            raise InvalidRiskRules(f"{path}.{key}", f"a list of 1 to {MAX_LIST} conditions")
        parsed = tuple(parse_condition(part, f"{path}.{key}[{i}]", depth + 1) for i, part in enumerate(parts))
        return All(parsed) if key == "all" else AnyOf(parsed)
    if set(node) == {"not"}:
        return Not(parse_condition(node["not"], f"{path}.not", depth + 1))
    if set(node) != {"fact", "op", "value"}:
        raise InvalidRiskRules(
            path, f"unknown keys {sorted(map(str, node))}: use all, any, not or fact/op/value"
        )
    fact, op, value = node["fact"], node["op"], node["value"]
    kind = FACTS.get(fact) if isinstance(fact, str) else None
    if kind is None:
        raise InvalidRiskRules(f"{path}.fact", f"{fact!r} is not a fact; facts: {', '.join(FACTS)}")
    if op == "contains_any":
        if kind is not str:
            raise InvalidRiskRules(f"{path}.op", f"contains_any applies to text, and {fact} is not text")
        if (
            not isinstance(value, list)
            or not value
            or len(value) > MAX_LIST
            or not all(isinstance(word, str) and word.strip() for word in value)
        ):
            raise InvalidRiskRules(f"{path}.value", f"a list of 1 to {MAX_LIST} non-empty words")
        return Compare(fact, op, tuple(word.strip().casefold() for word in value))
    if op not in NUMERIC_OPS:
        raise InvalidRiskRules(
            f"{path}.op", f"{op!r} is not one of {', '.join(sorted(NUMERIC_OPS))}, contains_any"
        )
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRiskRules(f"{path}.value", f"{fact} is a number")
    elif kind is bool:
        if not isinstance(value, bool) or op not in ("==", "!="):
            raise InvalidRiskRules(f"{path}.value", f"{fact} is true or false, compared with == or !=")
    elif not isinstance(value, str) or op not in ("==", "!="):
        raise InvalidRiskRules(f"{path}.value", f"{fact} is text, compared with ==, != or contains_any")
    return Compare(fact, op, value)


# ---- rules and rule sets -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    rule_id: str
    description: str
    enabled: bool
    when: Condition
    action: Action
    score: int = 0
    notify: tuple[str, ...] = ()  # roles told when it hits (lock and alert)


@dataclass(frozen=True)
class RuleSet:
    version: int
    freeze_score: int
    rules: tuple[Rule, ...]


def rule_set_from_document(version: int, document: object) -> RuleSet:
    """Validate a rule set document; anything doubtful is refused naming where."""
    if not isinstance(document, Mapping):
        raise InvalidRiskRules("document", "an object with freeze_score and rules")
    unknown = set(document) - {"freeze_score", "rules"}
    if unknown:
        raise InvalidRiskRules("document", f"unknown keys {sorted(map(str, unknown))}")
    freeze = document.get("freeze_score", 85)
    if isinstance(freeze, bool) or not isinstance(freeze, int) or not 1 <= freeze <= 1000:
        raise InvalidRiskRules("freeze_score", "a whole number from 1 to 1000")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or len(raw_rules) > MAX_RULES:
        raise InvalidRiskRules("rules", f"a list of at most {MAX_RULES} rules")
    rules: list[Rule] = []
    for index, raw in enumerate(raw_rules):
        path = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise InvalidRiskRules(path, "a rule is an object")
        allowed = {"id", "description", "enabled", "when", "action", "score", "notify"}
        if set(raw) - allowed:
            raise InvalidRiskRules(path, f"unknown keys {sorted(map(str, set(raw) - allowed))}")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id.strip() or len(rule_id) > 64:
            raise InvalidRiskRules(f"{path}.id", "a name of 1 to 64 characters")
        if any(rule.rule_id == rule_id for rule in rules):
            raise InvalidRiskRules(f"{path}.id", f"{rule_id!r} is used twice")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InvalidRiskRules(f"{path}.enabled", "true or false")
        action_name = raw.get("action")
        if action_name not in Action._value2member_map_:
            raise InvalidRiskRules(f"{path}.action", f"one of {', '.join(a.value for a in Action)}")
        action = Action(str(action_name))
        score = raw.get("score", 0)
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 1000:
            raise InvalidRiskRules(f"{path}.score", "a whole number from 0 to 1000")
        if action is Action.SCORE and score == 0:
            raise InvalidRiskRules(f"{path}.score", "a score rule needs a score above 0")
        notify = raw.get("notify", [])
        if (
            not isinstance(notify, list)
            or not all(isinstance(r, str) and r for r in notify)
            or len(notify) > 10
        ):
            raise InvalidRiskRules(f"{path}.notify", "a list of at most 10 roles or people")
        description = raw.get("description", "")
        if not isinstance(description, str) or len(description) > 500:
            raise InvalidRiskRules(f"{path}.description", "text of at most 500 characters")
        when = parse_condition(raw.get("when"), f"{path}.when")
        rules.append(Rule(rule_id.strip(), description, enabled, when, action, score, tuple(notify)))
    return RuleSet(version, freeze, tuple(rules))


# ---- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    hit: bool
    action: Action
    score: int  # what it added (0 when it did not hit)
    seen: Mapping[str, Any]  # the facts its condition read, as it saw them

    def document(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "hit": self.hit,
            "action": self.action.value,
            "score": self.score,
            "seen": dict(self.seen),
        }


@dataclass(frozen=True)
class Evaluation:
    version: int
    score: int
    outcome: Outcome
    results: tuple[RuleResult, ...]
    reason: str  # why it is held, for the order's status reason ("" when it passed)
    notify: tuple[str, ...]  # roles to tell (lock and alert rules that hit, and `risk` when held)
    frozen: bool  # held because the score reached freeze_score

    @property
    def hits(self) -> list[str]:
        return [result.rule_id for result in self.results if result.hit]


# facts that are personal data: what a rule saw of them is kept masked, with the words it found
PERSONAL_FACTS: Final = frozenset({"address"})


def _seen(when: Condition, facts: Mapping[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    matched = when.matched(facts)
    for name in sorted(when.facts()):
        value = facts.get(name)
        if name in PERSONAL_FACTS and isinstance(value, str):
            value = masking.mask_detail(value)
        seen[name] = value
        if name in matched:
            seen[f"{name}_matched"] = matched[name]
    return seen


def evaluate(rule_set: RuleSet, facts: Mapping[str, Any]) -> Evaluation:
    """Judge one order's facts by the enabled rules of a rule set."""
    results: list[RuleResult] = []
    score = 0
    held_by: list[str] = []
    notify: list[str] = []
    for rule in rule_set.rules:
        if not rule.enabled:
            continue
        hit = rule.when.test(facts)
        added = rule.score if hit else 0
        score += added
        seen = _seen(rule.when, facts)
        results.append(RuleResult(rule.rule_id, hit, rule.action, added, seen))
        if not hit:
            continue
        if rule.action in (Action.HOLD, Action.LOCK):
            held_by.append(rule.rule_id)
        if rule.action in (Action.LOCK, Action.ALERT):
            notify.extend(role for role in rule.notify if role not in notify)
    frozen = score >= rule_set.freeze_score
    held = bool(held_by) or frozen
    reasons = [f"rule {rule_id}" for rule_id in held_by]
    if frozen:
        reasons.append(f"risk score {score} ≥ {rule_set.freeze_score}")
    if held and "risk" not in notify:
        notify.insert(0, "risk")
    return Evaluation(
        rule_set.version,
        score,
        Outcome.HELD if held else Outcome.PASSED,
        tuple(results),
        ("held for risk review: " + ", ".join(reasons)) if held else "",
        tuple(notify),
        frozen,
    )


# ---- dry runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleHits:
    rule_id: str
    hits: int


@dataclass(frozen=True)
class DryRun:
    version: int
    orders: int  # orders replayed
    held: int  # how many the rule set would hold
    held_now: int  # how many the rules at the time held
    per_rule: tuple[RuleHits, ...]
    newly_held: tuple[str, ...]  # order ids held by this rule set and not by the rules at the time (≤ 50)
    no_longer_held: tuple[str, ...]


def dry_run(rule_set: RuleSet, recorded: Sequence[tuple[str, Mapping[str, Any], bool]]) -> DryRun:
    """Replay the rule set on the facts recorded for the last orders: (order id, facts, held then)."""
    per_rule = {rule.rule_id: 0 for rule in rule_set.rules if rule.enabled}
    held = held_now = 0
    newly: list[str] = []
    no_longer: list[str] = []
    for order_id, facts, was_held in recorded:
        judged = evaluate(rule_set, facts)
        for rule_id in judged.hits:
            per_rule[rule_id] += 1
        now_held = judged.outcome is Outcome.HELD
        held += now_held
        held_now += was_held
        if now_held and not was_held and len(newly) < 50:
            newly.append(order_id)
        if was_held and not now_held and len(no_longer) < 50:
            no_longer.append(order_id)
    return DryRun(
        rule_set.version,
        len(recorded),
        held,
        held_now,
        tuple(RuleHits(rule_id, hits) for rule_id, hits in per_rule.items()),
        tuple(newly),
        tuple(no_longer),
    )


# ---- the default rules (DOMAIN §7) ----------------------------------------------------------------

ADDRESS_KEYWORDS: Final = (
    "hotel",
    "hostel",
    "internet cafe",
    "internet café",
    "parcel locker",
    "酒店",
    "宾馆",
    "旅馆",
    "网吧",
    "快递柜",
    "丰巢",
)


def default_document() -> dict[str, Any]:
    return {
        "freeze_score": 85,
        "rules": [
            {
                "id": "address",
                "description": "address has hotel / internet café / parcel locker keywords and amount > 500",
                "when": {
                    "all": [
                        {"fact": "address", "op": "contains_any", "value": list(ADDRESS_KEYWORDS)},
                        {"fact": "amount_minor", "op": ">", "value": 50000},
                    ]
                },
                "action": "hold",
            },
            {
                "id": "velocity",
                "description": "the same phone with ≥ 5 orders within 1 hour to scattered addresses",
                "when": {
                    "all": [
                        {"fact": "phone_orders_1h", "op": ">=", "value": 5},
                        {"fact": "phone_addresses_1h", "op": ">=", "value": 3},
                    ]
                },
                "action": "score",
                "score": 90,
            },
            {
                "id": "price",
                "description": "a line discount > 85 % with no campaign flag: check the campaign setup",
                "when": {
                    "all": [
                        {"fact": "max_line_discount_pct", "op": ">", "value": 85},
                        {"fact": "campaign", "op": "==", "value": False},
                    ]
                },
                "action": "lock",
                "notify": ["ops"],
            },
        ],
    }


# ---- what the store keeps ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSetRecord:
    version: int
    status: str  # draft, active, retired
    document: dict[str, Any]
    note: str
    created_at: datetime
    created_by: str
    activated_at: datetime | None


@dataclass(frozen=True)
class EvaluationRecord:
    evaluation_id: int
    order_id: str
    evaluated_at: datetime
    version: int
    score: int
    outcome: str
    frozen: bool
    results: list[dict[str, Any]]
    review: str
    reviewed_by: str
    reviewed_at: datetime | None
    review_note: str


@dataclass(frozen=True)
class RuleStats:
    rule_id: str
    evaluated: int  # evaluations in the window that ran the rule
    hits: int
    approved: int  # holds it caused that the reviewer released: false positives
    cancelled: int  # holds it caused that the reviewer cancelled: confirmed
