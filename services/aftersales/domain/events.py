"""What after-sales announces: facts about tickets, recorded by the ticket itself (mappers turn each
into its `oms.aftersales.*` proto; Flagged, ReplacementShipped and RetentionSuggested are extra to
the issue's list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.aftersales.domain.approval import ConditionCheck
from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.retention import Suggestion
from services.aftersales.domain.vouchers import RefundLine, Voucher

# who approved when no person did
BY_RULES = "rules"
SUPERVISOR = "supervisor"


class RefundFailure(StrEnum):
    """How a provider ends a refund that did not succeed (WeChat Pay's refund statuses)."""

    CLOSED = "CLOSED"
    ABNORMAL = "ABNORMAL"


@dataclass(frozen=True, kw_only=True)
class TicketEvent:
    ticket_id: str
    order_id: str
    customer_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class TicketOpened(TicketEvent):
    channel: str
    kind: TicketKind
    reason: Reason
    lines: tuple[RefundLine, ...]
    damage_reported: bool
    # the refund as it would be when opened: what the approval rules look at
    quote: Voucher


@dataclass(frozen=True, kw_only=True)
class TicketApproved(TicketEvent):
    # BY_RULES, or the agent's id
    by: str
    # 0 and no conditions when a person approved
    rule_set_version: int
    rule: str
    conditions: tuple[ConditionCheck, ...]


@dataclass(frozen=True, kw_only=True)
class TicketRejected(TicketEvent):
    by: str
    note: str


@dataclass(frozen=True, kw_only=True)
class TicketFlagged(TicketEvent):
    """Not answered within the respond limit: overdue."""

    respond_by: datetime


@dataclass(frozen=True, kw_only=True)
class TicketEscalated(TicketEvent):
    """Still not answered at the escalation limit: a supervisor takes it (with an alert)."""

    to_role: str
    opened_at: datetime


@dataclass(frozen=True, kw_only=True)
class ReturnReceived(TicketEvent):
    lines: tuple[ReceivedLine, ...]

    @property
    def damaged(self) -> bool:
        return any(line.damaged for line in self.lines)


@dataclass(frozen=True, kw_only=True)
class RefundRequested(TicketEvent):
    voucher: Voucher
    # the provider's refund number (WeChat out_refund_no, Alipay out_request_no): derived from the ticket
    refund_no: str
    attempt: int
    provider: str
    transaction_id: str
    merchant_order_no: str
    # the payment's whole amount (WeChat's amount.total)
    payment_total_minor: int


@dataclass(frozen=True, kw_only=True)
class Refunded(TicketEvent):
    provider: str
    refund_no: str
    provider_refund_id: str
    voucher: Voucher


@dataclass(frozen=True, kw_only=True)
class RefundFailed(TicketEvent):
    refund_no: str
    status: RefundFailure
    reason: str


@dataclass(frozen=True, kw_only=True)
class ReplacementShipped(TicketEvent):
    shipment_id: str


@dataclass(frozen=True, kw_only=True)
class TicketClosed(TicketEvent):
    by: str
    note: str
    # money went back (by the provider, or settled outside it)
    refunded: bool


@dataclass(frozen=True, kw_only=True)
class RetentionSuggested(TicketEvent):
    suggestion: Suggestion


@dataclass(frozen=True, kw_only=True)
class AlertRaised:
    """Something needs a person: a failed refund, an escalated ticket (on `oms.alerts.raised`, addressed
    to a role)."""

    kind: str
    severity: str
    message: str
    order_id: str = ""
    customer_id: str = ""
    # who should act: supervisor, cs_lead, finance
    roles: tuple[str, ...] = ()


Event = (
    TicketOpened
    | TicketApproved
    | TicketRejected
    | TicketFlagged
    | TicketEscalated
    | ReturnReceived
    | RefundRequested
    | Refunded
    | RefundFailed
    | ReplacementShipped
    | TicketClosed
    | RetentionSuggested
    | AlertRaised
)
