"""The ticket: one after-sales request on one order, for some of its lines and units, from opening to
closing along its kind's transition table (`lifecycle`). It keeps the order as it was when opened
(amounts, paid, every line's buckets) and records the events its moves cause.

Opening (`open_ticket`) refuses, naming the field:
- a cancelled, unpaid or fully refunded order → `order_id` (FAILED_PRECONDITION);
- a return or exchange for an order not shipped yet → `kind`;
- a line not in the order, twice, or no unit → `lines[i].line_index` / `lines[i].quantity` (INVALID_ARGUMENT);
- more units than are left on a line (refunded, in flight or held by another open ticket) →
  `lines[i].quantity` (FAILED_PRECONDITION);
- a second open ticket on the order with the same reason → `reason`.

A refund's number at the provider is derived from the ticket (`RF` + ticket id), so asking again
after a timeout sends the same number and the provider refunds once. Only a person asking again
after the provider CLOSED the refund or found it ABNORMAL makes a new attempt (`RF<id>_<n>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from services.aftersales.domain import lifecycle
from services.aftersales.domain.approval import Decision, TicketFacts
from services.aftersales.domain.commands import OpenTicket, ReceivedLine
from services.aftersales.domain.errors import Refused
from services.aftersales.domain.events import (
    BY_RULES,
    SUPERVISOR,
    Event,
    Refunded,
    RefundFailed,
    RefundFailure,
    RefundRequested,
    ReplacementShipped,
    RetentionSuggested,
    ReturnReceived,
    TicketApproved,
    TicketClosed,
    TicketEscalated,
    TicketFlagged,
    TicketOpened,
    TicketRejected,
)
from services.aftersales.domain.lifecycle import (
    CLAIMING,
    OPEN_STATUSES,
    REFUNDS,
    RETURNS,
    TicketKind,
    TicketStatus,
)
from services.aftersales.domain.order_snapshot import PARTIALLY_REFUNDED, REFUNDED, OrderSnapshot
from services.aftersales.domain.reasons import DEFAULT_POLICY, Reason, RefundPolicy, Responsibility
from services.aftersales.domain.retention import DEFAULT_RETENTION, RetentionRule, suggest
from services.aftersales.domain.sla import (
    DEFAULT_SLA,
    Due,
    SlaMarks,
    SlaPolicy,
    due,
    next_deadline,
    respond_by,
)
from services.aftersales.domain.vouchers import (
    Ledger,
    LineRefunded,
    RefundLine,
    Voucher,
    calculate_voucher,
    check_refund_lines,
    ledger_after,
)
from services.kit.errors import FailedPrecondition, InvalidArgument

S = TicketStatus
NOTE_LENGTH = 500
# WeChat Pay's out_refund_no: at most 64 of [0-9A-Za-z_-|*@] (Alipay's out_request_no fits in it too)
REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
REFUND_PREFIX = "RF"
# room for the attempt suffix ("_99") after RF + the ticket id
MAX_TICKET_ID = 64 - len(REFUND_PREFIX) - 3


def refund_no(ticket_id: str, attempt: int = 1) -> str:
    """The provider's refund number of a ticket's refund attempt: `RF<ticket id>`, then `RF<id>_<n>`."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    number = f"{REFUND_PREFIX}{ticket_id}" if attempt == 1 else f"{REFUND_PREFIX}{ticket_id}_{attempt}"
    if not REFUND_NO.match(number):
        raise ValueError(f"{number!r} is not a valid provider refund number")
    return number


def check_ticket_id(ticket_id: str) -> None:
    if not ticket_id or len(ticket_id) > MAX_TICKET_ID or not REFUND_NO.match(ticket_id):
        raise InvalidArgument(
            "ticket_id", f"1–{MAX_TICKET_ID} characters of 0-9 A-Z a-z _ - | * @ (it names the refund)"
        )


# a ticket's conversation: notes by customer service, the customer, finance; kept whole, never edited
MAX_NOTES = 200


@dataclass(frozen=True)
class Note:
    at: datetime
    by: str
    text: str


class _Ids(TypedDict):
    ticket_id: str
    order_id: str
    customer_id: str
    at: datetime


@dataclass
class Ticket:
    ticket_id: str
    kind: TicketKind
    reason: Reason
    # who bears the reason, fixed when opened (a later policy change does not move a ticket's shipping)
    responsibility: Responsibility
    # the order as it was when the ticket was opened
    order: OrderSnapshot
    lines: tuple[RefundLine, ...]
    customer_note: str
    damage_reported: bool
    opened_by: str
    opened_at: datetime
    # the refund as it would have been when opened (what the approval rules judged)
    quote: Voucher
    status: TicketStatus = S.OPEN
    updated_at: datetime | None = None
    # approved, rejected or closed: the SLA clock stops
    answered_at: datetime | None = None
    answered_by: str = ""
    # the rules' latest decision (a REVIEW one leaves the ticket OPEN in the review queue)
    decision: Decision | None = None
    rejection_note: str = ""
    flagged_at: datetime | None = None
    escalated_at: datetime | None = None
    return_waybill_no: str = ""
    received: tuple[ReceivedLine, ...] = ()
    received_at: datetime | None = None
    # the refund's breakdown, fixed when the refund is asked for
    voucher: Voucher | None = None
    refund_attempt: int = 0
    refund_requested_at: datetime | None = None
    provider_refund_id: str = ""
    refund_failure: RefundFailure | None = None
    refund_failure_reason: str = ""
    refunded_at: datetime | None = None
    # an exchange's replacement: the order orders ships it as, and how that order ended
    replacement_shipment_id: str = ""
    replacement_delivered_at: datetime | None = None
    replacement_problem: str = ""
    closed_at: datetime | None = None
    closed_by: str = ""
    close_note: str = ""
    # closed after a failed refund that a person settled outside the provider: the money went back
    settled_offline: bool = False
    # the free-form log: what people said on the ticket, oldest first
    notes: tuple[Note, ...] = ()
    events: list[Event] = field(default_factory=list, compare=False, repr=False)

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def customer_id(self) -> str:
        return self.order.customer_id

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def refund_no(self) -> str:
        """The current attempt's provider refund number ("" before the refund is asked for)."""
        return refund_no(self.ticket_id, self.refund_attempt) if self.refund_attempt else ""

    @property
    def refund_lines(self) -> tuple[RefundLine, ...]:
        """The units the money is for: those asked, or once a return is received, those received."""
        if self.kind in RETURNS and self.received_at is not None:
            return tuple(RefundLine(r.line_index, r.quantity) for r in self.received if r.quantity)
        return self.lines

    @property
    def holds_refund(self) -> bool:
        """Its voucher counts in the refund ledger: asked for, refunded, failed but not yet given up,
        or settled outside the provider."""
        if self.voucher is None:
            return False
        return self.status is not S.CLOSED or self.refunded_at is not None or self.settled_offline

    @property
    def claims(self) -> dict[int, int]:
        """Units of each line held for this ticket that are not in the refund ledger yet."""
        if self.status not in CLAIMING:
            return {}
        return {line.line_index: line.quantity for line in self.refund_lines}

    @property
    def sla_marks(self) -> SlaMarks:
        return SlaMarks(self.opened_at, self.answered_at, self.flagged_at, self.escalated_at)

    def next_deadline(self, policy: SlaPolicy = DEFAULT_SLA) -> datetime | None:
        return next_deadline(self.sla_marks, policy)

    def facts(self) -> TicketFacts:
        """What the approval rules look at."""
        customised = [self.order.lines[line.line_index].customised for line in self.lines]
        known: bool | None = True if any(customised) else (None if None in customised else False)
        return TicketFacts(
            self.ticket_id,
            self.kind,
            self.reason,
            self.order.channel,
            self.order.delivered_at,
            known,
            self.damage_reported,
            self.quote.cash_minor + self.quote.points_minor,
        )

    # ---- moves

    def _move(self, target: TicketStatus, now: datetime) -> None:
        lifecycle.check(self.ticket_id, self.kind, self.status, target)
        self.status, self.updated_at = target, now

    def _answered(self, by: str, now: datetime) -> None:
        if self.answered_at is None:
            self.answered_at, self.answered_by = now, by

    def _ids(self, now: datetime) -> _Ids:
        return {
            "ticket_id": self.ticket_id,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "at": now,
        }

    def decide(self, decision: Decision, now: datetime) -> bool:
        """Apply the rules' decision: approved, or kept OPEN for a person (the decision is kept)."""
        if self.status is not S.OPEN:
            raise FailedPrecondition(
                f"ticket {self.ticket_id} is {self.status.value}: only an open ticket is decided"
            )
        self.decision, self.updated_at = decision, now
        if not decision.approved:
            return False
        self._move(S.APPROVED, now)
        self._answered(BY_RULES, now)
        self.events.append(
            TicketApproved(
                **self._ids(now),
                by=BY_RULES,
                rule_set_version=decision.rule_set_version,
                rule=decision.rule,
                conditions=decision.checks,
            )
        )
        return True

    def approve(self, by: str, now: datetime) -> None:
        """A person (cs_agent, supervisor) approves."""
        self._move(S.APPROVED, now)
        self._answered(by, now)
        self.events.append(
            TicketApproved(**self._ids(now), by=by, rule_set_version=0, rule="", conditions=())
        )

    def reject(self, by: str, note: str, now: datetime) -> None:
        self._move(S.REJECTED, now)
        self._answered(by, now)
        self.rejection_note = note[:NOTE_LENGTH]
        self.events.append(TicketRejected(**self._ids(now), by=by, note=self.rejection_note))

    def mark_return_sent(self, waybill_no: str, now: datetime) -> None:
        """The customer says the parcel is on its way back."""
        self._move(S.RETURN_PENDING, now)
        self.return_waybill_no = waybill_no

    def receive_return(self, received: Sequence[ReceivedLine], now: datetime) -> bool:
        """The warehouse scanned the returned parcel; False (nothing changes) for a repeated scan."""
        if self.received_at is not None:
            return False
        asked = {line.line_index: line.quantity for line in self.lines}
        seen: set[int] = set()
        for position, line in enumerate(received):
            at = f"received[{position}]"
            if line.line_index not in asked or line.line_index in seen:
                raise InvalidArgument(
                    f"{at}.line_index",
                    f"line {line.line_index} is not on ticket {self.ticket_id} (or named twice)",
                )
            seen.add(line.line_index)
            if not 0 <= line.quantity <= asked[line.line_index]:
                raise InvalidArgument(
                    f"{at}.quantity", f"between 0 and the {asked[line.line_index]} units asked"
                )
            if not 0 <= line.damaged <= line.quantity:
                raise InvalidArgument(f"{at}.damaged", "between 0 and the units received")
        if not any(line.quantity for line in received):
            raise InvalidArgument("received", "nothing received: record at least one unit")
        self._move(S.RETURN_RECEIVED, now)
        self.received, self.received_at = tuple(received), now
        self.events.append(ReturnReceived(**self._ids(now), lines=self.received))
        return True

    def request_refund(
        self, now: datetime, *, others: Sequence[Ticket] = (), refunded_outside: Ledger | None = None
    ) -> bool:
        """Fix the voucher (after what the order's other tickets refunded or hold) and ask for the money.

        False when already asked (a retry after a timeout): nothing changes and the caller sends the
        same `refund_no` again."""
        if self.status is S.REFUND_REQUESTED:
            return False
        if self.kind not in REFUNDS:
            raise FailedPrecondition(f"ticket {self.ticket_id} is an exchange: no money goes back")
        lifecycle.check(self.ticket_id, self.kind, self.status, S.REFUND_REQUESTED)
        others = [t for t in others if t.ticket_id != self.ticket_id]
        if self.order.payment is None:
            raise FailedPrecondition(
                f"order {self.order_id} ({self.order.channel}) was not paid through a provider "
                "we refund through"
            )
        voucher = calculate_voucher(
            self.order,
            self.refund_lines,
            self.reason,
            self.responsibility,
            refunded=refunded_so_far(others, refunded_outside),
            claimed=claimed_by(others),
        )
        self._move(S.REFUND_REQUESTED, now)
        self.voucher, self.refund_attempt, self.refund_requested_at = voucher, 1, now
        self.events.append(self._refund_requested(now))
        return True

    def _refund_requested(self, now: datetime) -> RefundRequested:
        assert self.voucher is not None and self.order.payment is not None
        payment = self.order.payment
        return RefundRequested(
            **self._ids(now),
            voucher=self.voucher,
            refund_no=self.refund_no,
            attempt=self.refund_attempt,
            provider=payment.provider,
            transaction_id=payment.transaction_id,
            merchant_order_no=payment.merchant_order_no,
            payment_total_minor=payment.amount_minor,
        )

    def _same_refund(self, number: str) -> None:
        if number != self.refund_no:
            raise Refused(
                "out_refund_no", f"{number} is not ticket {self.ticket_id}'s current refund {self.refund_no}"
            )

    def refund_succeeded(self, number: str, provider_refund_id: str, now: datetime) -> bool:
        """The provider says the money went back; False for a duplicate or late notice."""
        if self.refunded_at is not None:
            return False
        self._same_refund(number)
        self._move(S.REFUNDED, now)
        self.refunded_at, self.provider_refund_id = now, provider_refund_id
        self.refund_failure, self.refund_failure_reason = None, ""
        assert self.voucher is not None
        self.events.append(
            Refunded(
                **self._ids(now),
                provider=self.order.payment.provider if self.order.payment else "",
                refund_no=number,
                provider_refund_id=provider_refund_id,
                voucher=self.voucher,
            )
        )
        return True

    def refund_failed(self, number: str, status: RefundFailure, reason: str, now: datetime) -> bool:
        """The provider CLOSED the refund or found it ABNORMAL: visible and alerted, never retried
        by itself. False for a duplicate notice of the same failure."""
        if self.status is S.REFUND_FAILED and self.refund_failure is status and number == self.refund_no:
            return False
        self._same_refund(number)
        self._move(S.REFUND_FAILED, now)
        self.refund_failure, self.refund_failure_reason = status, reason[:NOTE_LENGTH]
        self.events.append(
            RefundFailed(**self._ids(now), refund_no=number, status=status, reason=self.refund_failure_reason)
        )
        return True

    def retry_refund(self, now: datetime) -> None:
        """A person asks again after the provider CLOSED the refund: a new attempt with a new number and
        the same voucher. Not after ABNORMAL: that refund may still land (the provider's own handling),
        so it is settled (`close(settled_offline=True)`) or waited for, never sent twice."""
        if self.status is S.REFUND_FAILED and self.refund_failure is not RefundFailure.CLOSED:
            raise FailedPrecondition(
                f"ticket {self.ticket_id}'s refund {self.refund_no} is ABNORMAL: it may still land, "
                "so it is not asked for again (settle it and close the ticket)"
            )
        self._move(S.REFUND_REQUESTED, now)
        self.refund_attempt += 1
        self.refund_requested_at, self.refund_failure, self.refund_failure_reason = now, None, ""
        self.events.append(self._refund_requested(now))

    def ship_replacement(self, shipment_id: str, now: datetime) -> None:
        self._move(S.REPLACEMENT_SHIPPED, now)
        self.replacement_shipment_id = shipment_id
        self.events.append(ReplacementShipped(**self._ids(now), shipment_id=shipment_id))

    def add_note(self, by: str, text: str, now: datetime) -> Note:
        """A note on the ticket's log (on a closed ticket too: finance may settle it later). A note
        answers nothing: only a decision stops the response clock."""
        text = text.strip()
        if not text:
            raise InvalidArgument("text", "is required: what the note says")
        if len(text) > NOTE_LENGTH:
            raise InvalidArgument("text", f"must be at most {NOTE_LENGTH} characters, got {len(text)}")
        if len(self.notes) >= MAX_NOTES:
            raise FailedPrecondition(
                f"ticket {self.ticket_id} has {MAX_NOTES} notes, the most it keeps: open a new ticket"
            )
        note = Note(now, by, text)
        self.notes, self.updated_at = (*self.notes, note), now
        return note

    def replacement_delivered(self, order_id: str, at: datetime, now: datetime) -> bool:
        """The exchange's replacement order reached the customer: the exchange is done and closes.
        False when this is not the ticket's replacement or it is not waiting for it (a repeat)."""
        if order_id != self.replacement_shipment_id or self.status is not S.REPLACEMENT_SHIPPED:
            return False
        self.replacement_delivered_at = at
        return self.close("orders", now, f"replacement order {order_id} delivered")

    def replacement_stopped(self, order_id: str, reason: str, now: datetime) -> bool:
        """The replacement order was cancelled: the customer still has no goods, so the ticket waits
        for a person with the reason (False: not its replacement, not waiting, or already noted)."""
        if order_id != self.replacement_shipment_id or self.status is not S.REPLACEMENT_SHIPPED:
            return False
        problem = f"replacement order {order_id} cancelled: {reason}"[:NOTE_LENGTH]
        if problem == self.replacement_problem:
            return False
        self.replacement_problem, self.updated_at = problem, now
        return True

    def close(self, by: str, now: datetime, note: str = "", settled_offline: bool = False) -> bool:
        """Close (the customer withdrawing, an agent after a refund or a failure); False if closed."""
        if self.status is S.CLOSED:
            return False
        if settled_offline and self.status is not S.REFUND_FAILED:
            raise FailedPrecondition("only a failed refund is settled outside the provider")
        self._move(S.CLOSED, now)
        self._answered(by, now)
        self.closed_at, self.closed_by, self.close_note = now, by, note[:NOTE_LENGTH]
        self.settled_offline = settled_offline
        refunded = self.refunded_at is not None or settled_offline
        self.events.append(TicketClosed(**self._ids(now), by=by, note=self.close_note, refunded=refunded))
        return True

    def apply_sla(self, now: datetime, policy: SlaPolicy = DEFAULT_SLA) -> list[Event]:
        """Flag or escalate what the SLA says is due at `now`; idempotent (nothing twice)."""
        owed = due(self.sla_marks, now, policy)
        recorded: list[Event] = []
        if owed is Due.NOTHING:
            return recorded
        if self.flagged_at is None:
            self.flagged_at = now
            recorded.append(TicketFlagged(**self._ids(now), respond_by=respond_by(self.sla_marks, policy)))
        if owed is Due.ESCALATE:
            self.escalated_at = now
            recorded.append(TicketEscalated(**self._ids(now), to_role=SUPERVISOR, opened_at=self.opened_at))
        self.updated_at = now
        self.events.extend(recorded)
        return recorded


# ---- the order's tickets together


def refunded_so_far(tickets: Sequence[Ticket], outside: Ledger | None = None) -> dict[int, LineRefunded]:
    """The refund ledger of an order: what its tickets' vouchers hold, plus refunds made outside them."""
    ledger: dict[int, LineRefunded] = dict(outside or {})
    for ticket in tickets:
        if ticket.holds_refund:
            assert ticket.voucher is not None
            ledger = ledger_after(ledger, ticket.voucher)
    return ledger


def claimed_by(tickets: Sequence[Ticket]) -> dict[int, int]:
    """Units per line held by open tickets that are not in the ledger yet."""
    claimed: dict[int, int] = {}
    for ticket in tickets:
        for index, quantity in ticket.claims.items():
            claimed[index] = claimed.get(index, 0) + quantity
    return claimed


def _check_order(command: OpenTicket) -> None:
    order = command.order
    if order.cancelled:
        raise Refused("order_id", f"order {order.order_id} is cancelled: nothing to refund or return")
    if not order.paid:
        raise Refused("order_id", f"order {order.order_id} is not paid: nothing to refund")
    if order.status == REFUNDED:
        raise Refused("order_id", f"order {order.order_id} is refunded in full already")
    if command.kind in RETURNS and not order.shipped:
        raise Refused(
            "kind",
            f"order {order.order_id} is {order.status}, not shipped yet: a {command.kind.value} needs "
            "the goods sent first (ask for REFUND_ONLY)",
        )


def open_ticket(
    command: OpenTicket,
    now: datetime,
    *,
    others: Sequence[Ticket] = (),
    refunded_outside: Ledger | None = None,
    policy: RefundPolicy = DEFAULT_POLICY,
    retention: RetentionRule | None = DEFAULT_RETENTION,
) -> Ticket:
    """A new ticket on the order, after its other tickets (`others`, any state) and refunds made
    outside after-sales (`refunded_outside`); records TicketOpened (and RetentionSuggested)."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    check_ticket_id(command.ticket_id)
    others = [t for t in others if t.order_id == command.order.order_id]
    if len(command.customer_note) > NOTE_LENGTH:
        raise InvalidArgument("customer_note", f"at most {NOTE_LENGTH} characters")
    _check_order(command)
    check_refund_lines(command.order, command.lines)
    for other in others:
        if other.is_open and other.reason is command.reason:
            raise Refused(
                "reason",
                f"ticket {other.ticket_id} on order {other.order_id} is open for {command.reason.value}: "
                "one open ticket per reason",
            )
    responsibility = policy.bears(command.reason)
    # the quote checks that the units are left; exchanges hold units the same way
    quote = calculate_voucher(
        command.order,
        command.lines,
        command.reason,
        responsibility,
        refunded=refunded_so_far(others, refunded_outside),
        claimed=claimed_by(others),
    )
    ticket = Ticket(
        command.ticket_id,
        command.kind,
        command.reason,
        responsibility,
        command.order,
        tuple(command.lines),
        command.customer_note,
        command.damage_reported,
        command.opened_by,
        now,
        quote,
        updated_at=now,
    )
    ids = ticket._ids(now)
    ticket.events.append(
        TicketOpened(
            **ids,
            channel=command.order.channel,
            kind=command.kind,
            reason=command.reason,
            lines=ticket.lines,
            damage_reported=command.damage_reported,
            quote=quote,
        )
    )
    if retention is not None:
        suggestion = suggest(retention, ticket.ticket_id, command.reason, command.customer_note, now)
        if suggestion is not None:
            ticket.events.append(RetentionSuggested(**ids, suggestion=suggestion))
    return ticket


def order_refund_state(order: OrderSnapshot, ledger: Mapping[int, LineRefunded]) -> str:
    """What the order becomes once the ledger's refunds landed: REFUNDED when every unit of every line
    is refunded, PARTIALLY_REFUNDED when some are, "" when none."""
    units = sum(entry.units for entry in ledger.values())
    if not units:
        return ""
    if all(ledger.get(line.index, LineRefunded()).units >= line.quantity for line in order.lines):
        return REFUNDED
    return PARTIALLY_REFUNDED
