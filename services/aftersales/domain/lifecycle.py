"""A ticket's lifecycle as explicit transition tables, one per kind: only the pairs listed may happen.

Refund only:        OPEN → APPROVED → REFUND_REQUESTED → REFUNDED → CLOSED
Return and refund:  OPEN → APPROVED → RETURN_PENDING → RETURN_RECEIVED → REFUND_REQUESTED → REFUNDED → CLOSED
Exchange:           OPEN → APPROVED → RETURN_PENDING → RETURN_RECEIVED → REPLACEMENT_SHIPPED → CLOSED

Every kind: OPEN → REJECTED → CLOSED; a refund the provider CLOSED or found ABNORMAL goes to
REFUND_FAILED, from where a person asks again (a new refund attempt, after CLOSED only) or closes the
ticket, or the provider's late success lands (after ABNORMAL). A return
may arrive without the customer saying it was sent (APPROVED → RETURN_RECEIVED). The customer may
withdraw (→ CLOSED) until the refund is asked for or the replacement shipped.
"""

from __future__ import annotations

from enum import StrEnum

from services.aftersales.domain.errors import IllegalTransition


class TicketKind(StrEnum):
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_AND_REFUND = "RETURN_AND_REFUND"
    EXCHANGE = "EXCHANGE"


class TicketStatus(StrEnum):
    OPEN = "OPEN"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    RETURN_PENDING = "RETURN_PENDING"
    RETURN_RECEIVED = "RETURN_RECEIVED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUNDED = "REFUNDED"
    REFUND_FAILED = "REFUND_FAILED"
    REPLACEMENT_SHIPPED = "REPLACEMENT_SHIPPED"
    CLOSED = "CLOSED"


K, S = TicketKind, TicketStatus

TRANSITIONS: dict[TicketKind, dict[TicketStatus, frozenset[TicketStatus]]] = {
    K.REFUND_ONLY: {
        S.OPEN: frozenset({S.APPROVED, S.REJECTED, S.CLOSED}),
        S.APPROVED: frozenset({S.REFUND_REQUESTED, S.CLOSED}),
        S.REFUND_REQUESTED: frozenset({S.REFUNDED, S.REFUND_FAILED}),
        # a CLOSED refund asked again by a person; an ABNORMAL one may still land
        S.REFUND_FAILED: frozenset({S.REFUND_REQUESTED, S.REFUNDED, S.CLOSED}),
        S.REFUNDED: frozenset({S.CLOSED}),
        S.REJECTED: frozenset({S.CLOSED}),
        S.CLOSED: frozenset(),
    },
    K.RETURN_AND_REFUND: {
        S.OPEN: frozenset({S.APPROVED, S.REJECTED, S.CLOSED}),
        S.APPROVED: frozenset({S.RETURN_PENDING, S.RETURN_RECEIVED, S.CLOSED}),
        S.RETURN_PENDING: frozenset({S.RETURN_RECEIVED, S.CLOSED}),
        S.RETURN_RECEIVED: frozenset({S.REFUND_REQUESTED}),
        S.REFUND_REQUESTED: frozenset({S.REFUNDED, S.REFUND_FAILED}),
        # a CLOSED refund asked again by a person; an ABNORMAL one may still land
        S.REFUND_FAILED: frozenset({S.REFUND_REQUESTED, S.REFUNDED, S.CLOSED}),
        S.REFUNDED: frozenset({S.CLOSED}),
        S.REJECTED: frozenset({S.CLOSED}),
        S.CLOSED: frozenset(),
    },
    K.EXCHANGE: {
        S.OPEN: frozenset({S.APPROVED, S.REJECTED, S.CLOSED}),
        S.APPROVED: frozenset({S.RETURN_PENDING, S.RETURN_RECEIVED, S.CLOSED}),
        S.RETURN_PENDING: frozenset({S.RETURN_RECEIVED, S.CLOSED}),
        S.RETURN_RECEIVED: frozenset({S.REPLACEMENT_SHIPPED}),
        S.REPLACEMENT_SHIPPED: frozenset({S.CLOSED}),
        S.REJECTED: frozenset({S.CLOSED}),
        S.CLOSED: frozenset(),
    },
}

# kinds where the goods come back first
RETURNS = frozenset({K.RETURN_AND_REFUND, K.EXCHANGE})
# kinds that end in money back
REFUNDS = frozenset({K.REFUND_ONLY, K.RETURN_AND_REFUND})
# still waiting for someone (the one-ticket-per-reason rule and the SLA look at these)
OPEN_STATUSES = frozenset(
    {S.OPEN, S.APPROVED, S.RETURN_PENDING, S.RETURN_RECEIVED, S.REFUND_REQUESTED, S.REFUND_FAILED}
)
# the ticket's units are held for it but not yet in the refund ledger
CLAIMING = frozenset({S.OPEN, S.APPROVED, S.RETURN_PENDING, S.RETURN_RECEIVED, S.REPLACEMENT_SHIPPED})


def statuses(kind: TicketKind) -> frozenset[TicketStatus]:
    return frozenset(TRANSITIONS[kind])


def is_legal(kind: TicketKind, current: TicketStatus, target: TicketStatus) -> bool:
    return target in TRANSITIONS[kind].get(current, frozenset())


def check(ticket_id: str, kind: TicketKind, current: TicketStatus, target: TicketStatus) -> None:
    if not is_legal(kind, current, target):
        raise IllegalTransition(ticket_id, kind.value, current.value, target.value)
