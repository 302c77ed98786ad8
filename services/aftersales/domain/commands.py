"""What after-sales is asked to do, as the callers said it (checked by the domain when applied)."""

from __future__ import annotations

from dataclasses import dataclass

from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.vouchers import RefundLine


@dataclass(frozen=True)
class OpenTicket:
    ticket_id: str
    order: OrderSnapshot
    kind: TicketKind
    reason: Reason
    lines: tuple[RefundLine, ...]
    customer_note: str = ""
    damage_reported: bool = False
    # the customer's or the agent's id
    opened_by: str = ""


@dataclass(frozen=True)
class ReceivedLine:
    """What the warehouse found in a returned parcel for one line: units received, of them damaged."""

    line_index: int
    quantity: int
    damaged: int = 0
