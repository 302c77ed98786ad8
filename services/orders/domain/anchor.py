"""The status anchor: declarative, versioned rules from source statuses to the canonical status.

Every source system (WMS, ERP, carriers, marketplaces) means something different by the same
word — the ERP says "shipped" when a label is printed, a marketplace when the carrier picks up.
Raw reports are stored as received; these rules say what each one means canonically
(DOMAIN.md §1). A rule yields two different things on purpose:

- `status`: the canonical transition the report drives, if any. Most sources drive nothing;
  they only observe.
- `means`: the canonical statuses that agree with the report, for the drift report. This is
  wider than `status` because a source that has said its last word (a warehouse after
  scan-out) still agrees when the order has moved on.

The condition language is deliberately tiny and parsed here, never `eval`ed, because rule files
are edited by operations staff and must not be able to run code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from services.orders.domain.lifecycle import OrderStatus

Scalar = Decimal | str | bool

_RULE_KEYS: Final = frozenset(
    {"name", "source", "when", "status", "means", "waybill_from", "scan_out", "raw_status_field"}
)
_TOP_KEYS: Final = frozenset({"version", "rules"})
_ORDERING_OPS: Final = frozenset({">", ">=", "<", "<="})

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH_RE: Final = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_SOURCE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*")
# Longest operators first so ">=" is not read as ">" followed by "=1".
_CONDITION_RE: Final = re.compile(
    rf"\s*(?P<field>{_IDENT}(?:\.{_IDENT})*)\s*(?P<op>==|!=|>=|<=|>|<|\bin\b)\s*(?P<rest>.*?)\s*", re.DOTALL
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE: Final = re.compile(_NUMBER)
_LITERAL_RE: Final = re.compile(
    rf"""(?P<number>{_NUMBER})(?![\w.])
        |'(?P<single>(?:[^'\\]|\\.)*)'
        |"(?P<double>(?:[^"\\]|\\.)*)"
        |(?P<bool>true|false)\b""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE_RE: Final = re.compile(r"\\(.)", re.DOTALL)


class InvalidRules(ValueError):
    """A rules document that cannot be trusted; the message names the rule and the key at fault."""


# ---------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Condition:
    text: str  # as written, so describe() shows operators exactly what they wrote
    field: str
    op: str
    literals: tuple[Scalar, ...]  # one literal, or the members of an `in` list

    def holds(self, fields: Mapping[Any, Any]) -> bool:
        value = _lookup(fields, self.field)
        if value is _MISSING:
            return False
        if self.op == "in":
            return any(_equal(value, literal) for literal in self.literals)
        literal = self.literals[0]
        if self.op == "==":
            return _equal(value, literal)
        if self.op == "!=":
            return not _equal(value, literal)
        number = _as_number(value)
        if number is None or not isinstance(literal, Decimal):
            return False
        if self.op == ">":
            return number > literal
        if self.op == ">=":
            return number >= literal
        if self.op == "<":
            return number < literal
        return number <= literal


_MISSING: Final = object()


def _lookup(fields: Mapping[Any, Any], path: str) -> object:
    """Walk a dotted path. Null and non-scalar values count as missing: a waybill of `null` is no
    waybill, and a condition against a whole sub-object is never what the rule author meant."""
    value: object = fields
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return _MISSING
        try:
            value = value.get(part, _MISSING)
        except TypeError:  # a mapping with keys that cannot be compared to a string
            return _MISSING
        if value is _MISSING:
            return _MISSING
    if value is None or not isinstance(value, str | int | float | Decimal | bool):
        return _MISSING
    return value


def _as_number(value: object) -> Decimal | None:
    # bool is an int in Python, but "flag > 0" on a boolean is a rule bug, not a comparison.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # repr keeps 0.1 as 0.1, not its binary expansion
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        parsed = _decimal(value.strip())
        if parsed is None:
            return None
        number = parsed
    else:
        return None
    return number if number.is_finite() else None


def _decimal(text: str) -> Decimal | None:
    # An exponent beyond Decimal's range ("1e99999999") is not a number we can compare; the
    # caller treats it as text instead of letting a hostile payload raise out of evaluate().
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _text(value: object) -> str:
    # JSON-style booleans, so `flag == true` matches both True and the string "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        return str(value)
    except ValueError:  # an int past Python's digit limit; no literal in a rule can equal it
        return "<unprintable number>"


def _equal(value: object, literal: Scalar) -> bool:
    if isinstance(literal, Decimal):
        number = _as_number(value)
        if number is not None:
            return number == literal
    return _text(value) == _text(literal)


def _parse_literal(text: str, pos: int) -> tuple[Scalar, int] | None:
    match = _LITERAL_RE.match(text, pos)
    if match is None:
        return None
    if match["number"] is not None:
        number = _decimal(match["number"])
        return None if number is None else (number, match.end())
    if match["bool"] is not None:
        return match["bool"] == "true", match.end()
    quoted = match["single"] if match["single"] is not None else match["double"]
    return _ESCAPE_RE.sub(r"\1", quoted), match.end()


def _parse_literal_list(rest: str) -> tuple[Scalar, ...] | None:
    if not (rest.startswith("[") and rest.endswith("]")):
        return None
    inner = rest[1:-1]
    literals: list[Scalar] = []
    pos = 0
    while True:
        while pos < len(inner) and inner[pos].isspace():
            pos += 1
        parsed = _parse_literal(inner, pos)
        if parsed is None:
            return None
        literal, pos = parsed
        literals.append(literal)
        while pos < len(inner) and inner[pos].isspace():
            pos += 1
        if pos == len(inner):
            return tuple(literals)
        if inner[pos] != ",":
            return None
        pos += 1


def parse_condition(text: str) -> Condition:
    """Parse one `when:` entry; raises ValueError with a human reason."""
    match = _CONDITION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"cannot read condition {text!r}: expected '<field> <op> <literal>'")
    field, op, rest = match["field"], match["op"], match["rest"]
    if op == "in":
        literals = _parse_literal_list(rest)
        if literals is None:
            raise ValueError(f"condition {text!r}: 'in' needs a non-empty list like [1, 'a']")
        return Condition(text, field, op, literals)
    parsed = _parse_literal(rest, 0)
    if parsed is None or parsed[1] != len(rest):
        raise ValueError(f"condition {text!r}: {rest!r} is not a number, quoted string, true or false")
    literal = parsed[0]
    if op in _ORDERING_OPS and not isinstance(literal, Decimal):
        # Would always be false at run time; refusing it now catches the typo before it ships.
        raise ValueError(f"condition {text!r}: {op} needs a number")
    return Condition(text, field, op, (literal,))


# ---------------------------------------------------------------------------------------------
# Rules and observations


@dataclass(frozen=True)
class Observation:
    rule: str
    source: str
    raw_status: str
    status: OrderStatus | None
    means: frozenset[OrderStatus]
    waybill_no: str = ""
    scanned_out: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    when: tuple[Condition, ...]
    status: OrderStatus | None
    means: frozenset[OrderStatus]  # already defaulted to {status} by the loader
    waybill_from: str | None = None
    scan_out: bool = False
    raw_status_field: str | None = None

    def matches(self, fields: Mapping[Any, Any]) -> bool:
        return all(condition.holds(fields) for condition in self.when)

    def observe(self, fields: Mapping[Any, Any]) -> Observation:
        waybill = _lookup(fields, self.waybill_from) if self.waybill_from else _MISSING
        return Observation(
            rule=self.name,
            source=self.source,
            raw_status=self._raw_status(fields),
            status=self.status,
            means=self.means,
            waybill_no="" if waybill is _MISSING else _text(waybill),
            scanned_out=self.scan_out,
        )

    def _raw_status(self, fields: Mapping[Any, Any]) -> str:
        if self.raw_status_field:
            value = _lookup(fields, self.raw_status_field)
            if value is not _MISSING:
                return _text(value)
        # Sources without a status field (or a report lacking it) still need something a person
        # can read in the drift report: the evidence the rule matched on.
        tested = dict.fromkeys(condition.field for condition in self.when)
        return ", ".join(f"{path}={_text(_lookup(fields, path))}" for path in tested)


def _ordered(statuses: frozenset[OrderStatus]) -> list[str]:
    return [status.value for status in OrderStatus if status in statuses]


@dataclass(frozen=True)
class RuleBook:
    version: int
    rules: tuple[Rule, ...]

    def evaluate(self, source: str, fields: Mapping[str, Any]) -> Observation | None:
        """The first rule of `source`, in file order, whose conditions all hold; None if none does."""
        for rule in self.rules:
            if rule.source == source and rule.matches(fields):
                return rule.observe(fields)
        return None

    def sources(self) -> frozenset[str]:
        return frozenset(rule.source for rule in self.rules)

    def describe(self) -> list[dict[str, Any]]:
        """Plain data for a query RPC; also a valid `rules:` list, so describe() output reloads."""
        return [
            {
                "name": rule.name,
                "source": rule.source,
                "when": [condition.text for condition in rule.when],
                "status": rule.status.value if rule.status is not None else None,
                "means": _ordered(rule.means),
                "waybill_from": rule.waybill_from,
                "scan_out": rule.scan_out,
                "raw_status_field": rule.raw_status_field,
            }
            for rule in self.rules
        ]


def agrees(observation: Observation, canonical: OrderStatus) -> bool:
    """Whether a source's last report is consistent with the canonical status (else: drift)."""
    return canonical in observation.means


# ---------------------------------------------------------------------------------------------
# Loading


def _status(value: object, where: str) -> OrderStatus:
    if not isinstance(value, str) or value not in OrderStatus.__members__:
        raise InvalidRules(f"{where}: unknown canonical status {value!r}")
    return OrderStatus[value]


def _optional_path(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _PATH_RE.fullmatch(value):
        raise InvalidRules(f"{where}: {key}: {value!r} is not a field name or dotted path")
    return value


def _load_rule(index: int, raw: object) -> Rule:
    where = f"rule {index}"
    if not isinstance(raw, Mapping):
        raise InvalidRules(f"{where}: must be a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRules(f"{where}: name: required, a non-empty string")
    where = f"rule {index} ({name})"
    unknown = sorted(str(key) for key in raw if key not in _RULE_KEYS)
    if unknown:
        raise InvalidRules(f"{where}: unknown key(s) {', '.join(unknown)}")

    source = raw.get("source")
    if not isinstance(source, str) or not _SOURCE_RE.fullmatch(source):
        # Sources are matched exactly; upper-case identifiers like the Channel enum avoid "wms" vs "WMS".
        raise InvalidRules(f"{where}: source: required, an upper-case name like WMS, got {source!r}")

    when = raw.get("when")
    if not isinstance(when, list) or not when:
        # A rule without conditions would swallow every later rule of its source.
        raise InvalidRules(f"{where}: when: required, a non-empty list of conditions")
    conditions = []
    for position, text in enumerate(when):
        if not isinstance(text, str):
            raise InvalidRules(f"{where}: when[{position}]: must be a string, got {text!r}")
        try:
            conditions.append(parse_condition(text))
        except ValueError as error:
            raise InvalidRules(f"{where}: when[{position}]: {error}") from None

    status = None if raw.get("status") is None else _status(raw["status"], f"{where}: status")
    raw_means = raw.get("means")
    if raw_means is None:
        means = frozenset({status}) if status is not None else frozenset()
    elif isinstance(raw_means, list):
        means = frozenset(_status(value, f"{where}: means") for value in raw_means)
    else:
        raise InvalidRules(f"{where}: means: must be a list of canonical statuses")
    if not means:
        # It would drift against every canonical status and drive nothing: certainly a mistake.
        raise InvalidRules(f"{where}: means: a rule must drive a status or say which statuses agree")
    if status is not None and status not in means:
        raise InvalidRules(f"{where}: means: must include the status the rule drives ({status.value})")

    scan_out = raw.get("scan_out", False)
    if not isinstance(scan_out, bool):
        raise InvalidRules(f"{where}: scan_out: must be true or false, got {scan_out!r}")
    if scan_out and status not in (None, OrderStatus.SHIPPED):
        raise InvalidRules(f"{where}: scan_out: a scan-out can only drive SHIPPED, not {status}")

    return Rule(
        name=name,
        source=source,
        when=tuple(conditions),
        status=status,
        means=means,
        waybill_from=_optional_path(raw, "waybill_from", where),
        scan_out=scan_out,
        raw_status_field=_optional_path(raw, "raw_status_field", where),
    )


def rules_from_document(document: object) -> RuleBook:
    """Validate a parsed rules document (services/orders/status_rules.py reads the YAML); anything
    doubtful is refused with InvalidRules."""
    if not isinstance(document, Mapping):
        raise InvalidRules("document: must be a mapping with 'version' and 'rules'")
    unknown = sorted(str(key) for key in document if key not in _TOP_KEYS)
    if unknown:
        raise InvalidRules(f"document: unknown key(s) {', '.join(unknown)}")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRules(f"version: required, a positive integer, got {version!r}")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise InvalidRules("rules: required, a non-empty list")
    rules = tuple(_load_rule(index, raw) for index, raw in enumerate(raw_rules))
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.name in seen:
            raise InvalidRules(f"rule {index} ({rule.name}): name: duplicate of rule {seen[rule.name]}")
        seen[rule.name] = index
    return RuleBook(version=version, rules=rules)
