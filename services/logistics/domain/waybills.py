"""A shipment's waybill request in a batch: its states, what an attempt's outcome makes of it, and the
retry policy (exponential back-off with jitter, then the dead-letter list).

The rule that keeps one waybill per shipment: an attempt whose outcome is unknown (a timeout, a
connection dropped after the request was sent) marks the request uncertain, and the next attempt asks
the carrier whether the order already has a waybill before it asks for one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from services.logistics.domain.model import Line, Place, Recipient, Waybill

MAX_BATCH = 1000


class WaybillState(StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    CREATED = "created"
    DEAD = "dead"
    SKIPPED = "skipped"


PENDING = frozenset({WaybillState.QUEUED, WaybillState.IN_FLIGHT, WaybillState.RETRYING})
DONE = frozenset({WaybillState.CREATED, WaybillState.DEAD, WaybillState.SKIPPED})


@dataclass(frozen=True)
class WaybillRequest:
    batch_id: str
    shipment_id: str
    order_id: str
    # the account asked ("sf", "zto", …, "cainiao")
    carrier: str
    state: WaybillState
    attempts: int = 0
    uncertain: bool = False
    next_attempt_at: datetime | None = None
    last_error: str = ""
    waybill_no: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class WaybillOrder:
    """What a carrier is asked for one shipment: its own order id at the carrier is the shipment id,
    the same on every attempt, so the carrier recognises a repeat."""

    carrier_order_id: str
    order_id: str
    carrier: str
    product: str
    sender: Place
    sender_name: str
    destination: Place
    recipient: Recipient
    lines: tuple[Line, ...]
    sender_phone: str = ""


@dataclass(frozen=True)
class Issued:
    waybill: Waybill


@dataclass(frozen=True)
class Failed:
    reason: str
    # the carrier may have made the waybill (no answer came back): ask before asking again
    uncertain: bool = False


Outcome = Issued | Failed


@dataclass(frozen=True)
class Lookup:
    """Whether the carrier has a waybill for an order: the waybill (inside an Issued), None for no, or
    a Failed when the carrier could not be asked."""

    found: Outcome | None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter. The defaults retry a carrier's passing error after about half
    a second (most succeed then) and still ride out about 31 s of failures before a dead letter
    (0.5 + 1 + 2 + 4 + 8 + 16 s, jittered), longer than a breaker stays open (30 s)."""

    max_attempts: int = 7
    base_seconds: float = 0.5
    max_seconds: float = 300.0
    # each delay is drawn from [d·(1−jitter), d·(1+jitter)]
    jitter: float = 0.5

    def delay(self, attempts: int, draw: float) -> timedelta:
        """The wait before attempt `attempts + 1`; `draw` is uniform in [0, 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return timedelta(seconds=ceiling * (1 - self.jitter + 2 * self.jitter * draw))


def claimed(request: WaybillRequest, now: datetime) -> WaybillRequest:
    return replace(request, state=WaybillState.IN_FLIGHT, updated_at=now)


def after_attempt(
    request: WaybillRequest, outcome: Outcome, now: datetime, policy: RetryPolicy, draw: float
) -> WaybillRequest:
    """The request once an attempt's outcome is known: created, retried later, or dead."""
    attempts = request.attempts + 1
    if isinstance(outcome, Issued):
        return replace(
            request,
            state=WaybillState.CREATED,
            attempts=attempts,
            uncertain=False,
            waybill_no=outcome.waybill.waybill_no,
            next_attempt_at=None,
            last_error="",
            updated_at=now,
        )
    # once uncertain, uncertain until the carrier has been asked: a later clear failure does not
    # prove the first attempt made nothing
    uncertain = request.uncertain or outcome.uncertain
    if attempts >= policy.max_attempts:
        return replace(
            request,
            state=WaybillState.DEAD,
            attempts=attempts,
            uncertain=uncertain,
            next_attempt_at=None,
            last_error=outcome.reason,
            updated_at=now,
        )
    return replace(
        request,
        state=WaybillState.RETRYING,
        attempts=attempts,
        uncertain=uncertain,
        next_attempt_at=now + policy.delay(attempts, draw),
        last_error=outcome.reason,
        updated_at=now,
    )


def abandoned_in_flight(request: WaybillRequest, now: datetime) -> WaybillRequest:
    """An attempt whose worker died mid-call (its lease ran out): it may have reached the carrier."""
    return replace(request, state=WaybillState.RETRYING, uncertain=True, next_attempt_at=now, updated_at=now)


def replayed(request: WaybillRequest, now: datetime) -> WaybillRequest:
    """A dead letter queued again with fresh attempts; it stays uncertain if it was (it is asked first)."""
    return replace(
        request, state=WaybillState.QUEUED, attempts=0, next_attempt_at=now, last_error="", updated_at=now
    )


@dataclass(frozen=True)
class BatchProgress:
    total: int
    created: int
    dead: int
    skipped: int

    @property
    def pending(self) -> int:
        return self.total - self.created - self.dead - self.skipped

    @property
    def finished(self) -> bool:
        return self.pending == 0
