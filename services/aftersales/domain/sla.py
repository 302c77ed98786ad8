"""The SLA clock of a ticket, with `now` passed in.

A ticket is answered when a person or a rule approves or rejects it (or it is closed). Not answered
within `respond_within` (48 h by default) it is flagged overdue; still not answered at
`escalate_after` (72 h) it escalates to a supervisor. Both happen once: `due` says what is owed at
`now` and says nothing once it is done, so a sweep that runs twice changes nothing.

Colour, for the queues: green while under `amber_percent` (75 %) of the respond limit (36 h by
default), amber from there until the limit, red once overdue; an answered ticket is green.

`next_deadline` is the moment the next thing falls due (the respond limit, then the escalation
limit, then none): the store keeps it in an indexed column and the sweep asks for
`next_deadline <= now`.

Policy option, off by default: hold a customer's next order while they have an open overdue ticket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import InvalidArgument


@dataclass(frozen=True)
class SlaPolicy:
    respond_within: timedelta = timedelta(hours=48)
    escalate_after: timedelta = timedelta(hours=72)
    amber_percent: int = 75
    hold_next_order: bool = False

    def __post_init__(self) -> None:
        if self.respond_within <= timedelta(0):
            raise InvalidArgument("respond_within", "must be positive")
        if self.escalate_after < self.respond_within:
            raise InvalidArgument("escalate_after", "must not come before the respond limit")
        if not 0 < self.amber_percent <= 100:
            raise InvalidArgument("amber_percent", "must be between 1 and 100")

    @property
    def amber_after(self) -> timedelta:
        return self.respond_within * self.amber_percent // 100


DEFAULT_SLA = SlaPolicy()


@dataclass(frozen=True)
class SlaMarks:
    """What the SLA reads of a ticket."""

    opened_at: datetime
    answered_at: datetime | None = None
    flagged_at: datetime | None = None
    escalated_at: datetime | None = None


class Colour(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


class Due(StrEnum):
    NOTHING = "nothing"
    FLAG = "flag"
    # escalating also flags a ticket not flagged yet (a sweep that ran late)
    ESCALATE = "escalate"


def respond_by(marks: SlaMarks, policy: SlaPolicy = DEFAULT_SLA) -> datetime:
    return marks.opened_at + policy.respond_within


def escalate_at(marks: SlaMarks, policy: SlaPolicy = DEFAULT_SLA) -> datetime:
    return marks.opened_at + policy.escalate_after


def is_overdue(marks: SlaMarks, now: datetime, policy: SlaPolicy = DEFAULT_SLA) -> bool:
    return marks.answered_at is None and now >= respond_by(marks, policy)


def colour(marks: SlaMarks, now: datetime, policy: SlaPolicy = DEFAULT_SLA) -> Colour:
    if marks.answered_at is not None:
        return Colour.GREEN
    waited = now - marks.opened_at
    if waited >= policy.respond_within:
        return Colour.RED
    if waited >= policy.amber_after:
        return Colour.AMBER
    return Colour.GREEN


def due(marks: SlaMarks, now: datetime, policy: SlaPolicy = DEFAULT_SLA) -> Due:
    """What the SLA owes the ticket at `now`; NOTHING once it is done (or the ticket answered)."""
    if marks.answered_at is not None:
        return Due.NOTHING
    if marks.escalated_at is None and now >= escalate_at(marks, policy):
        return Due.ESCALATE
    if marks.flagged_at is None and now >= respond_by(marks, policy):
        return Due.FLAG
    return Due.NOTHING


def next_deadline(marks: SlaMarks, policy: SlaPolicy = DEFAULT_SLA) -> datetime | None:
    """When `due` next says something other than NOTHING; None when it never will."""
    if marks.answered_at is not None or marks.escalated_at is not None:
        return None
    if marks.flagged_at is None:
        return respond_by(marks, policy)
    return escalate_at(marks, policy)


def holds_next_order(policy: SlaPolicy, open_tickets: Iterable[SlaMarks], now: datetime) -> bool:
    """With the policy on, a customer's next order is held while one of their open tickets is overdue."""
    return policy.hold_next_order and any(is_overdue(marks, now, policy) for marks in open_tickets)
