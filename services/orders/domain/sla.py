"""SLA timers: how long an order may spend in each stage of its life, by product category, and the
colour it shows (green, amber at the warning level, red past the limit).

Each order carries its timer: the category and limits are fixed when it is accepted (a later change of
the rules applies to new orders, as a promise made to a customer does not move), and the next moment
anything must happen to it (`Timer.due_at`) is a column the SLA job reads by index, so the job only
ever reads what is due. Pure code: no clock of its own, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from services.orders.domain import model
from services.orders.domain.lifecycle import OrderStatus

S = OrderStatus


class Stage(StrEnum):
    """The clocks an order runs through: payment → out of the warehouse, then out → delivered."""

    FULFILMENT = "fulfilment"
    DELIVERY = "delivery"


class Level(IntEnum):
    GREEN = 0
    AMBER = 1
    RED = 2


# the states in which each clock runs; any other state (cancelled, refunded, completed, …) stops it.
# A held or frozen order keeps its clock running: the customer is waiting all the same.
_FULFILMENT_STATES = frozenset({S.PAID, S.ALLOCATED, S.PICKING, S.PACKED, S.ON_HOLD, S.EXCEPTION})
_DELIVERY_STATES = frozenset({S.SHIPPED, S.ON_HOLD, S.EXCEPTION})


class InvalidSla(ValueError):
    """The SLA rules document is not usable."""


@dataclass(frozen=True)
class Limit:
    warn: timedelta
    breach: timedelta


@dataclass(frozen=True)
class Category:
    name: str
    limits: Mapping[Stage, Limit]
    sku_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SlaBook:
    """The SLA rules: categories (matched by SKU prefix; an order takes the strictest of its lines'),
    their limits per stage, and the category of a SKU no prefix names."""

    categories: Mapping[str, Category]
    default_category: str

    def category_of(self, skus: Sequence[str]) -> Category:
        """The strictest category among the lines' (the shortest fulfilment limit wins: one fresh line
        makes the parcel fresh)."""
        found = {self._category_of_sku(sku) for sku in skus} or {self.default_category}
        chosen = [self.categories[name] for name in sorted(found)]
        return min(chosen, key=_strictness)

    def _category_of_sku(self, sku: str) -> str:
        best, length = self.default_category, -1
        for category in self.categories.values():
            for prefix in category.sku_prefixes:
                if sku.startswith(prefix) and len(prefix) > length:
                    best, length = category.name, len(prefix)
        return best

    def terms_for(self, skus: Sequence[str]) -> Terms:
        category = self.category_of(skus)
        return Terms(category.name, dict(category.limits))


def _strictness(category: Category) -> tuple[float, str]:
    limit = category.limits.get(Stage.FULFILMENT)
    return (limit.breach.total_seconds() if limit else float("inf"), category.name)


@dataclass(frozen=True)
class Terms:
    """What an order was promised when accepted: its category and the limit of each stage."""

    category: str
    limits: Mapping[Stage, Limit]

    def document(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "limits": {
                stage.value: [int(limit.warn.total_seconds()), int(limit.breach.total_seconds())]
                for stage, limit in self.limits.items()
            },
        }

    @staticmethod
    def from_document(document: Mapping[str, Any] | None) -> Terms | None:
        if not document:
            return None
        limits = {
            Stage(stage): Limit(timedelta(seconds=pair[0]), timedelta(seconds=pair[1]))
            for stage, pair in document.get("limits", {}).items()
            if stage in Stage._value2member_map_
        }
        return Terms(str(document.get("category", "")), limits)


@dataclass(frozen=True)
class Timer:
    """The running clock of one stage: when it started, when it turns amber and red."""

    stage: Stage
    started_at: datetime
    warn_at: datetime
    deadline: datetime

    def level_at(self, now: datetime) -> Level:
        if now >= self.deadline:
            return Level.RED
        if now >= self.warn_at:
            return Level.AMBER
        return Level.GREEN

    def due_after(self, reached: Level) -> datetime | None:
        """The next moment the job must look, once `reached` has been acted on (None: nothing more)."""
        if reached < Level.AMBER:
            return self.warn_at
        if reached < Level.RED:
            return self.deadline
        return None


def running(
    terms: Terms | None,
    status: OrderStatus,
    paid_at: datetime | None,
    scanned_out_at: datetime | None,
) -> Timer | None:
    """The clock running for an order in this state, if any."""
    if terms is None:
        return None
    if paid_at is not None and scanned_out_at is None and status in _FULFILMENT_STATES:
        stage, started = Stage.FULFILMENT, paid_at
    elif scanned_out_at is not None and status in _DELIVERY_STATES:
        stage, started = Stage.DELIVERY, scanned_out_at
    else:
        return None
    limit = terms.limits.get(stage)
    if limit is None:
        return None
    return Timer(stage, started, started + limit.warn, started + limit.breach)


@dataclass
class SlaState:
    """An order's SLA bookkeeping as the store keeps it: its terms, the clock running, the highest
    level already acted on for that clock, when the job must next look, and who owns it."""

    terms: Terms | None = None
    stage: Stage | None = None
    level: Level = Level.GREEN
    started_at: datetime | None = None
    warn_at: datetime | None = None
    deadline: datetime | None = None
    due_at: datetime | None = None
    owner: str = ""  # set per order; empty: the queue's owner
    backup: str = ""
    escalated_to: str = ""

    def follow(self, status: OrderStatus, paid_at: datetime | None, scanned_out_at: datetime | None) -> None:
        """Follow the order's state after a change: a new clock starts green, a stopped one clears."""
        timer = running(self.terms, status, paid_at, scanned_out_at)
        if timer is None:
            self.stage, self.started_at, self.warn_at, self.deadline, self.due_at = (
                None,
                None,
                None,
                None,
                None,
            )
            self.level, self.escalated_to = Level.GREEN, ""
            return
        if timer.stage != self.stage or timer.deadline != self.deadline:
            self.level, self.escalated_to = Level.GREEN, ""
        self.stage, self.started_at = timer.stage, timer.started_at
        self.warn_at, self.deadline = timer.warn_at, timer.deadline
        self.due_at = timer.due_after(self.level)

    @property
    def timer(self) -> Timer | None:
        if self.stage is None or self.started_at is None or self.warn_at is None or self.deadline is None:
            return None
        return Timer(self.stage, self.started_at, self.warn_at, self.deadline)

    def queue(self) -> str:
        """The queue an order's timer is listed and owned under: stage/category."""
        category = self.terms.category if self.terms else ""
        return f"{self.stage.value if self.stage else ''}/{category}"


@dataclass(frozen=True)
class Owners:
    owner: str
    backup: str


@dataclass(frozen=True)
class Escalation:
    """What the SLA job does for an order whose timer reached a new level."""

    stage: Stage
    level: Level
    deadline: datetime
    notify: str  # who is told: the owner at amber, the backup at red
    escalated: bool  # true at red: the order is escalated to the backup


def escalate(state: SlaState, now: datetime, owners: Owners) -> Escalation | None:
    """Move the state to the level its timer shows now; what to tell whom, if the level rose."""
    timer = state.timer
    if timer is None:
        state.due_at = None
        return None
    level = timer.level_at(now)
    if level <= state.level:
        state.due_at = timer.due_after(state.level)
        return None
    state.level = level
    state.due_at = timer.due_after(level)
    owner = state.owner or owners.owner
    backup = state.backup or owners.backup
    if level is Level.RED:
        state.escalated_to = backup or owner
        return Escalation(timer.stage, level, timer.deadline, state.escalated_to, True)
    return Escalation(timer.stage, level, timer.deadline, owner, False)


# ---- the rules document ------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object, where: str) -> timedelta:
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return timedelta(seconds=text)
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0:
        raise InvalidSla(f"{where}: {text!r} is not a duration such as 45m, 2h or 90s")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def book_from_document(document: object) -> SlaBook:
    """Validate an SLA rules document (as parsed from YAML) into a book; anything doubtful refused."""
    if not isinstance(document, Mapping):
        raise InvalidSla("the document must be a mapping with `categories` and `default_category`")
    unknown = set(document) - {"categories", "default_category"}
    if unknown:
        raise InvalidSla(f"unknown keys {sorted(unknown)}")
    raw_categories = document.get("categories")
    if not isinstance(raw_categories, Mapping) or not raw_categories:
        raise InvalidSla("categories: at least one category is required")
    categories: dict[str, Category] = {}
    for name, body in raw_categories.items():
        where = f"categories.{name}"
        if not isinstance(name, str) or not name or not isinstance(body, Mapping):
            raise InvalidSla(f"{where}: a category is a name with `limits` (and optional `sku_prefixes`)")
        if set(body) - {"limits", "sku_prefixes"}:
            raise InvalidSla(f"{where}: unknown keys {sorted(set(body) - {'limits', 'sku_prefixes'})}")
        prefixes = body.get("sku_prefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
            raise InvalidSla(f"{where}.sku_prefixes: a list of non-empty SKU prefixes")
        raw_limits = body.get("limits")
        if not isinstance(raw_limits, Mapping) or not raw_limits:
            raise InvalidSla(f"{where}.limits: a limit per stage ({', '.join(s.value for s in Stage)})")
        limits: dict[Stage, Limit] = {}
        for stage_name, limit in raw_limits.items():
            if stage_name not in Stage._value2member_map_:
                raise InvalidSla(f"{where}.limits: unknown stage {stage_name!r}")
            if not isinstance(limit, Mapping) or set(limit) != {"warn", "breach"}:
                raise InvalidSla(f"{where}.limits.{stage_name}: give `warn` and `breach`")
            warn = parse_duration(limit["warn"], f"{where}.limits.{stage_name}.warn")
            breach = parse_duration(limit["breach"], f"{where}.limits.{stage_name}.breach")
            if warn >= breach:
                raise InvalidSla(f"{where}.limits.{stage_name}: warn must come before breach")
            limits[Stage(stage_name)] = Limit(warn, breach)
        categories[name] = Category(name, limits, tuple(prefixes))
    default = document.get("default_category")
    if default not in categories:
        raise InvalidSla(f"default_category: {default!r} is not one of {sorted(categories)}")
    return SlaBook(categories, str(default))


def reached_events(order_id: str, state: SlaState, escalation: Escalation) -> list[object]:
    """The order's events for a level reached: the SLA event, and the alert for whoever is told."""
    category = state.terms.category if state.terms else ""
    reached = model.SlaReached(
        escalation.stage.value,
        category,
        int(escalation.level),
        state.started_at or escalation.deadline,
        escalation.deadline,
        escalation.notify,
        escalation.escalated,
    )
    queue = f"{escalation.stage.value}/{category}"
    roles = (escalation.notify,) if escalation.notify else ()
    if escalation.escalated:
        who = f"escalated to {escalation.notify}" if escalation.notify else "no backup owner is set"
        alert = model.AlertRaised(
            "sla_breached",
            "high",
            f"order {order_id} is past its {queue} limit (due {escalation.deadline.isoformat()}): {who}",
            roles,
        )
    else:
        alert = model.AlertRaised(
            "sla_warning",
            "medium",
            f"order {order_id} reached the warning level of {queue} (due {escalation.deadline.isoformat()})",
            roles,
        )
    return [reached, alert]
