"""Alerts that reach a person: the record of one problem while it is open, who it is routed to, when it
escalates, and its states (OPEN → ACKNOWLEDGED → RESOLVED, each with who and when).

Repeats of a problem fold into its open record (count, last seen); a repeat after it was resolved opens
a new one. Routing picks the first route whose kind pattern and minimum severity the alert meets; its
chain is who is told, in order: an unacknowledged alert moves one step down the chain every
`escalate_after` until the chain ends. Time is passed in.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from services.kit.errors import FailedPrecondition, InvalidArgument

MAX_NOTE = 500


class AlertState(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class Severity(IntEnum):
    """As oms.alerts.v1.Severity numbers them."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    AlertState.OPEN: frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED}),
    AlertState.ACKNOWLEDGED: frozenset({AlertState.RESOLVED}),
    AlertState.RESOLVED: frozenset(),
}


def check_transition(current: AlertState, target: AlertState) -> None:
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(f"alert is {current.value}; it cannot become {target.value}")


def fold_key(dedupe_key: str, kind: str, order_id: str, source: str) -> str:
    """What makes two alerts the same problem: the producer's dedupe key, else kind, order and source."""
    return dedupe_key or f"{kind}|{order_id}|{source}"


@dataclass(frozen=True)
class Recipient:
    """A role (its on-call phone, if any) or a named person, who is told of an alert."""

    role: str = ""
    person: str = ""
    phone: str = ""

    @property
    def label(self) -> str:
        return f"person:{self.person}" if self.person else f"role:{self.role}"

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value}


@dataclass(frozen=True)
class Route:
    """Alerts of a kind matching `kinds` (shell patterns, e.g. `inventory_*`) at `min_severity` or above
    go to `chain[0]`; unacknowledged, they escalate to the next of the chain every `escalate_after`
    (never, when None)."""

    kinds: tuple[str, ...]
    min_severity: int
    chain: tuple[Recipient, ...]
    escalate_after: timedelta | None = None

    def matches(self, kind: str, severity: int) -> bool:
        return severity >= self.min_severity and any(fnmatch.fnmatchcase(kind, p) for p in self.kinds)


def route_for(routes: Sequence[Route], kind: str, severity: int) -> Route | None:
    """The first route the alert meets, in the order the setting lists them."""
    return next((route for route in routes if route.matches(kind, severity)), None)


def escalation_due(
    chain: Sequence[Recipient], level: int, escalate_after: timedelta | None, since: datetime
) -> datetime | None:
    """When an alert told to `chain[level]` at `since` moves on; None when nobody is left to move to."""
    if escalate_after is None or level + 1 >= len(chain):
        return None
    return since + escalate_after


@dataclass(frozen=True)
class Raised:
    """One occurrence of an alert, as the bus brought it."""

    event_id: str
    kind: str
    severity: int
    source: str
    order_id: str
    message: str
    dedupe_key: str
    customer_id: str
    channel: str
    roles: tuple[str, ...]
    at: datetime

    @property
    def fold_key(self) -> str:
        return fold_key(self.dedupe_key, self.kind, self.order_id, self.source)


@dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    fold_key: str
    state: AlertState
    kind: str
    severity: int
    source: str
    order_id: str
    message: str
    customer_id: str
    channel: str
    roles: tuple[str, ...]
    count: int
    first_seen: datetime
    last_seen: datetime
    chain: tuple[Recipient, ...]
    level: int
    escalate_after: timedelta | None
    escalate_at: datetime | None
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    acknowledge_note: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None
    resolution: str = ""
    # the level whose assignee was last told (None: nobody yet); behind `level`, a delivery is owed
    notified_level: int | None = None

    @property
    def owed(self) -> bool:
        """Whether the current assignee of an open alert is still to be told."""
        told = -1 if self.notified_level is None else self.notified_level
        return self.state is AlertState.OPEN and told < self.level

    @property
    def assignee(self) -> Recipient | None:
        return self.chain[self.level] if self.level < len(self.chain) else None

    @property
    def assigned_to(self) -> str:
        return self.assignee.label if self.assignee else ""


@dataclass(frozen=True)
class AlertFilter:
    state: AlertState | None = None
    min_severity: int = 0
    kind: str = ""
    source: str = ""
    order_id: str = ""
    # "role:ops" (assigned to the role, or an alert addressed to it) or "person:li.lei"
    assigned_to: str = ""


def opened(alert_id: str, raised: Raised, route: Route | None) -> AlertRecord:
    """The record a first occurrence opens, told to the first of its route's chain."""
    chain = route.chain if route else ()
    after = route.escalate_after if route else None
    return AlertRecord(
        alert_id=alert_id,
        fold_key=raised.fold_key,
        state=AlertState.OPEN,
        kind=raised.kind,
        severity=raised.severity,
        source=raised.source,
        order_id=raised.order_id,
        message=raised.message,
        customer_id=raised.customer_id,
        channel=raised.channel,
        roles=raised.roles,
        count=1,
        first_seen=raised.at,
        last_seen=raised.at,
        chain=chain,
        level=0,
        escalate_after=after,
        escalate_at=escalation_due(chain, 0, after, raised.at),
    )


def escalated(record: AlertRecord, now: datetime) -> AlertRecord:
    """One step down the chain; the next step is due `escalate_after` from now, if anyone is left."""
    if record.state is not AlertState.OPEN or record.level + 1 >= len(record.chain):
        raise FailedPrecondition(f"alert {record.alert_id} cannot escalate")
    level = record.level + 1
    return replace(
        record, level=level, escalate_at=escalation_due(record.chain, level, record.escalate_after, now)
    )


def _note(field: str, text: str) -> str:
    if len(text) > MAX_NOTE:
        raise InvalidArgument(field, f"at most {MAX_NOTE} characters")
    return text.strip()


def acknowledged(record: AlertRecord, who: str, note: str, now: datetime) -> AlertRecord:
    """Someone is on it: it stops escalating."""
    check_transition(record.state, AlertState.ACKNOWLEDGED)
    return replace(
        record,
        state=AlertState.ACKNOWLEDGED,
        acknowledged_by=who,
        acknowledged_at=now,
        acknowledge_note=_note("note", note),
        escalate_at=None,
    )


def resolved(record: AlertRecord, who: str, resolution: str, now: datetime) -> AlertRecord:
    """Done: the next occurrence of its problem opens a new record."""
    check_transition(record.state, AlertState.RESOLVED)
    return replace(
        record,
        state=AlertState.RESOLVED,
        resolved_by=who,
        resolved_at=now,
        resolution=_note("resolution", resolution),
        escalate_at=None,
    )


# ---- the ALERT_ROUTES setting ------------------------------------------------------------------------

SEVERITY_NAMES = {severity.name.lower(): int(severity) for severity in Severity}


def _severity(value: Any, where: str) -> int:
    if isinstance(value, str) and value.lower() in SEVERITY_NAMES:
        return SEVERITY_NAMES[value.lower()]
    raise ValueError(f"{where}.min_severity must be one of {', '.join(SEVERITY_NAMES)}, got {value!r}")


def _recipient(value: Any, where: str) -> Recipient:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object with role or person (and an optional phone)")
    role, person, phone = (str(value.get(key, "")).strip() for key in ("role", "person", "phone"))
    unknown = set(value) - {"role", "person", "phone"}
    if unknown or bool(role) == bool(person):
        raise ValueError(f"{where} must name exactly one of role or person (and an optional phone)")
    if phone and not (phone.lstrip("+").isdigit() and 6 <= len(phone.lstrip("+")) <= 15):
        raise ValueError(f"{where}.phone must be digits, optionally with a leading +")
    return Recipient(role=role, person=person, phone=phone)


def parse_routes(text: str, default_escalate_after: timedelta) -> tuple[Route, ...]:
    """ALERT_ROUTES: a JSON list of {"kinds": ["inventory_*"], "min_severity": "high",
    "chain": [{"role": "ops", "phone": "+8613800000000"}, {"person": "li.lei"}], "escalate_after_s": 600};
    escalate_after_s defaults to ALERT_ESCALATE_AFTER_S, 0 never escalates."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError("must be a non-empty JSON list of routes")
    routes = []
    for index, entry in enumerate(raw):
        where = f"routes[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be an object")
        kinds = entry.get("kinds", ["*"])
        if isinstance(kinds, str):
            kinds = [kinds]
        if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise ValueError(f"{where}.kinds must be a list of kind patterns")
        chain = entry.get("chain")
        if not isinstance(chain, list) or not chain:
            raise ValueError(f"{where}.chain must be a non-empty list of recipients")
        after_s = entry.get("escalate_after_s", default_escalate_after.total_seconds())
        if isinstance(after_s, bool) or not isinstance(after_s, int | float) or after_s < 0:
            raise ValueError(f"{where}.escalate_after_s must be a number of seconds >= 0")
        routes.append(
            Route(
                kinds=tuple(kinds),
                min_severity=_severity(entry.get("min_severity", "low"), where),
                chain=tuple(_recipient(r, f"{where}.chain[{n}]") for n, r in enumerate(chain)),
                escalate_after=timedelta(seconds=after_s) if after_s else None,
            )
        )
    return tuple(routes)


def default_routes(escalate_after: timedelta) -> tuple[Route, ...]:
    """High and critical alerts to operations' on-call, escalating to the supervisor, then an admin;
    the rest to operations, without escalation."""
    return (
        Route(
            ("*",),
            Severity.HIGH,
            (Recipient(role="ops"), Recipient(role="supervisor"), Recipient(role="admin")),
            escalate_after,
        ),
        # an alert without a severity (an older producer) still reaches someone
        Route(("*",), 0, (Recipient(role="ops"),)),
    )


def chain_document(chain: Sequence[Recipient]) -> list[dict[str, str]]:
    return [recipient.as_dict() for recipient in chain]


def chain_of(document: Sequence[Mapping[str, str]]) -> tuple[Recipient, ...]:
    return tuple(Recipient(**dict(entry)) for entry in document)
