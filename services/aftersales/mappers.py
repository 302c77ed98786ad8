"""Every proto ↔ domain conversion of after-sales: requests in, tickets and vouchers out, the order read
from orders, and the integration events the use cases emit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml
from google.protobuf.message import Message

from oms.aftersales.v1 import aftersales_pb2 as pb
from oms.aftersales.v1 import events_pb2 as events_pb
from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from services.aftersales import subjects
from services.aftersales.domain import events as ev
from services.aftersales.domain.approval import Decision, DryRun, RuleSetVersion
from services.aftersales.domain.commands import OpenTicket, ReceivedLine
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.order_snapshot import Buckets, OrderSnapshot, Payment, SnapshotLine
from services.aftersales.domain.reasons import parse_reason
from services.aftersales.domain.sla import colour, is_overdue, respond_by
from services.aftersales.domain.tickets import Ticket
from services.aftersales.domain.vouchers import RefundLine, Voucher
from services.aftersales.handlers.common import Policy
from services.kit import bus
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp

SOURCE = "aftersales"
SEVERITIES = {"low": 1, "medium": 2, "high": 3, "critical": 4}
MAX_LINES = 500
MAX_DOCUMENT = 64 * 1024


def money(currency: str, amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=currency, amount_minor=amount)


def _time(value: Any) -> datetime | None:
    if not value.seconds and not value.nanos:
        return None
    return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


# ---- requests in


def kind_of(value: int) -> TicketKind:
    name = pb.TicketKind.Name(value) if value in pb.TicketKind.values() else ""
    kind = name.removeprefix("TICKET_KIND_")
    if kind not in TicketKind.__members__:
        raise InvalidArgument("kind", "REFUND_ONLY, RETURN_AND_REFUND or EXCHANGE")
    return TicketKind(kind)


def status_name(value: int) -> str:
    if value == 0:
        return ""
    if value not in pb.TicketStatus.values():
        raise InvalidArgument("status", f"unknown value {value}")
    return pb.TicketStatus.Name(value).removeprefix("TICKET_STATUS_")


def open_command(request: pb.OpenTicketRequest, ticket_id: str, order: OrderSnapshot, by: str) -> OpenTicket:
    if len(request.lines) > MAX_LINES:
        raise InvalidArgument("lines", f"at most {MAX_LINES} lines")
    if not request.lines:
        raise InvalidArgument("lines", "name at least one of the order's lines with a quantity")
    return OpenTicket(
        ticket_id=ticket_id,
        order=order,
        kind=kind_of(request.kind),
        reason=parse_reason(request.reason.strip().lower(), "reason"),
        lines=tuple(RefundLine(line.line_index, line.quantity) for line in request.lines),
        customer_note=request.customer_note,
        damage_reported=request.damage_reported,
        opened_by=by,
    )


def received_lines(request: pb.ReceiveReturnRequest) -> list[ReceivedLine]:
    if not request.lines:
        raise InvalidArgument("lines", "list what came back: each line with its units")
    if len(request.lines) > MAX_LINES:
        raise InvalidArgument("lines", f"at most {MAX_LINES} lines")
    return [ReceivedLine(line.line_index, line.quantity, line.damaged) for line in request.lines]


def rule_document(text: str) -> Any:
    """A rule set's YAML or JSON text, read safely; a document that cannot be read names the field."""
    if not text.strip():
        raise InvalidArgument("document", "is required: the rule set as YAML or JSON")
    if len(text) > MAX_DOCUMENT:
        raise InvalidArgument("document", f"at most {MAX_DOCUMENT} characters")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidArgument("document", f"is neither YAML nor JSON: {str(error)[:200]}") from None


# ---- the order, as orders answers it


def snapshot(
    order: orders_pb2.Order, payments: list[orders_pb2.Payment], customised: dict[str, bool]
) -> OrderSnapshot:
    """What after-sales keeps of the order; its payment is the successful one orders applied."""
    currency = order.total.currency_code or "CNY"
    lines = tuple(
        SnapshotLine(
            index=index,
            sku=line.sku,
            title=line.title,
            quantity=line.quantity,
            amounts=Buckets(
                line.amounts.goods.amount_minor,
                line.amounts.promotion.amount_minor,
                line.amounts.coupon.amount_minor,
                line.amounts.points.amount_minor,
                line.amounts.shipping.amount_minor,
            ),
            customised=customised.get(line.sku),
        )
        for index, line in enumerate(order.lines)
    )
    paid = [
        p
        for p in payments
        if p.status == orders_pb2.PAYMENT_STATUS_SUCCESS and p.state == orders_pb2.PAYMENT_STATE_APPLIED
    ]
    payment = None
    if paid:
        first = paid[-1]
        payment = Payment(
            first.provider, first.transaction_id, first.merchant_order_no, first.amount.amount_minor
        )
    shipped = [_time(s.scanned_out_at) for s in order.shipments if s.HasField("scanned_out_at")]
    delivered = [_time(s.delivered_at) for s in order.shipments if s.HasField("delivered_at")]
    return OrderSnapshot(
        order_id=order.order_id,
        customer_id=order.buyer_id,
        channel=orders_pb2.Channel.Name(order.channel).removeprefix("CHANNEL_"),
        status=orders_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_"),
        currency=currency,
        paid_at=_time(order.paid_at) if order.HasField("paid_at") else None,
        lines=lines,
        payment=payment,
        shipped_at=max((t for t in shipped if t), default=None),
        delivered_at=max((t for t in delivered if t), default=None),
    )


# ---- tickets out


def _buckets(currency: str, amounts: Buckets) -> dict[str, common_pb2.Money]:
    return {
        "goods": money(currency, amounts.goods_minor),
        "promotion": money(currency, amounts.promotion_minor),
        "coupon": money(currency, amounts.coupon_minor),
        "points": money(currency, amounts.points_minor),
        "shipping": money(currency, amounts.shipping_minor),
    }


def voucher_message(voucher: Voucher) -> pb.RefundVoucher:
    currency = voucher.currency
    return pb.RefundVoucher(
        lines=[
            pb.VoucherLine(
                line_index=line.line_index,
                sku=line.sku,
                quantity=line.quantity,
                cash=money(currency, line.cash_minor),
                rule=line.rule,
                **_buckets(currency, line.amounts),
            )
            for line in voucher.lines
        ],
        cash=money(currency, voucher.cash_minor),
        points=money(currency, voucher.points_minor),
        shipping=money(currency, voucher.shipping_minor),
        shipping_rule=f"{voucher.reason.value}: {voucher.responsibility.value} bears it ({voucher.rule})",
    )


def decision_message(ticket: Ticket) -> pb.ApprovalDecision | None:
    decision: Decision | None = ticket.decision
    if ticket.answered_at is None and decision is None:
        return None
    by_rules = ticket.answered_by == ev.BY_RULES
    message = pb.ApprovalDecision(
        approved=ticket.status not in (TicketStatus.OPEN, TicketStatus.REJECTED),
        decided_by="" if by_rules else ticket.answered_by,
        note=ticket.rejection_note,
    )
    if decision is not None and (by_rules or ticket.answered_at is None):
        message.rule_set_version = decision.rule_set_version
        message.rule = decision.rule
        message.conditions.extend(
            pb.ConditionResult(
                condition=f"{check.condition} {check.expected}".strip(),
                held=check.held,
                observed=check.observed,
            )
            for check in decision.checks
        )
    if ticket.answered_at is not None:
        message.decided_at.CopyFrom(timestamp(ticket.answered_at))
    return message


def _history(ticket: Ticket) -> list[pb.TicketEntry]:
    steps: list[tuple[datetime | None, str, str, str]] = [
        (ticket.opened_at, "opened", ticket.opened_by, f"{ticket.kind.value} for {ticket.reason.value}"),
        (ticket.flagged_at, "flagged", "sla", "past the response limit"),
        (ticket.escalated_at, "escalated", "sla", "escalated to a supervisor"),
        (
            ticket.answered_at
            if ticket.status is not TicketStatus.CLOSED or ticket.closed_at != ticket.answered_at
            else None,
            "rejected" if ticket.rejection_note else "approved",
            ticket.answered_by,
            ticket.rejection_note,
        ),
        (
            ticket.received_at,
            "return_received",
            "warehouse",
            f"{sum(r.quantity for r in ticket.received)} units",
        ),
        (ticket.refund_requested_at, "refund_requested", "aftersales", ticket.refund_no),
        (ticket.refunded_at, "refunded", "provider", ticket.provider_refund_id),
        (
            ticket.replacement_delivered_at,
            "replacement_delivered",
            "orders",
            f"replacement order {ticket.replacement_shipment_id}",
        ),
        (ticket.closed_at, "closed", ticket.closed_by, ticket.close_note),
    ]
    steps += [(note.at, "note", note.by, note.text) for note in ticket.notes]
    happened = sorted(
        ((at, kind, actor, detail) for at, kind, actor, detail in steps if at is not None),
        key=lambda step: step[0],
    )
    return [
        pb.TicketEntry(at=timestamp(at), kind=kind, actor=actor, detail=detail)
        for at, kind, actor, detail in happened
    ]


REFUND_STATUS = {
    TicketStatus.REFUND_REQUESTED: "PROCESSING",
    TicketStatus.REFUNDED: "SUCCESS",
}


def ticket_message(ticket: Ticket, policy: Policy, now: datetime) -> pb.Ticket:
    currency = ticket.order.currency
    marks = ticket.sla_marks
    message = pb.Ticket(
        ticket_id=ticket.ticket_id,
        order_id=ticket.order_id,
        customer_id=ticket.customer_id,
        kind=f"TICKET_KIND_{ticket.kind.value}",  # type: ignore[arg-type]
        status=f"TICKET_STATUS_{ticket.status.value}",  # type: ignore[arg-type]
        reason=ticket.reason.value.upper(),
        customer_note=ticket.customer_note,
        damage_reported=ticket.damage_reported,
        lines=[
            pb.TicketLine(
                line_index=line.line_index,
                sku=ticket.order.lines[line.line_index].sku,
                quantity=line.quantity,
                received=next((r.quantity for r in ticket.received if r.line_index == line.line_index), 0),
                damaged=next((r.damaged for r in ticket.received if r.line_index == line.line_index), 0),
            )
            for line in ticket.lines
        ],
        order_total=money(currency, ticket.order.order_total_minor),
        order_paid=money(currency, ticket.order.paid_minor),
        voucher=voucher_message(ticket.voucher or ticket.quote),
        sla_colour=colour(marks, now, policy.sla).value.upper(),
        overdue=is_overdue(marks, now, policy.sla),
        escalated=ticket.escalated_at is not None,
        history=_history(ticket),
        replacement_order_id=ticket.replacement_shipment_id,
        replacement_problem=ticket.replacement_problem,
        notes=[pb.TicketNote(at=timestamp(n.at), by=n.by, text=n.text) for n in ticket.notes],
    )
    message.respond_by.CopyFrom(timestamp(respond_by(marks, policy.sla)))
    message.opened_at.CopyFrom(timestamp(ticket.opened_at))
    message.updated_at.CopyFrom(timestamp(ticket.updated_at or ticket.opened_at))
    decision = decision_message(ticket)
    if decision is not None:
        message.decision.CopyFrom(decision)
    if ticket.voucher is not None and ticket.order.payment is not None:
        status = REFUND_STATUS.get(ticket.status, "")
        if ticket.refund_failure is not None:
            status = ticket.refund_failure.value
        refund = pb.Refund(
            provider=ticket.order.payment.provider,
            out_refund_no=ticket.refund_no,
            provider_refund_id=ticket.provider_refund_id,
            status=status or ("SUCCESS" if ticket.refunded_at else "PROCESSING"),
            amount=money(currency, ticket.voucher.cash_minor),
            failure_reason=ticket.refund_failure_reason,
        )
        if ticket.refund_requested_at is not None:
            refund.requested_at.CopyFrom(timestamp(ticket.refund_requested_at))
        if ticket.refunded_at is not None:
            refund.settled_at.CopyFrom(timestamp(ticket.refunded_at))
        message.refund.CopyFrom(refund)
    return message


def rule_set_message(version: RuleSetVersion) -> pb.ApprovalRuleSet:
    message = pb.ApprovalRuleSet(
        version=version.version,
        status=version.status.value.upper(),
        document=json.dumps(version.document, ensure_ascii=False, indent=2),
        note=version.note,
    )
    message.created_at.CopyFrom(timestamp(version.created_at))
    if version.activated_at is not None:
        message.activated_at.CopyFrom(timestamp(version.activated_at))
    return message


def dry_run_message(result: DryRun) -> pb.DryRunApprovalRulesResponse:
    return pb.DryRunApprovalRulesResponse(
        replayed=result.replayed,
        changed=len(result.changed),
        changes=[
            pb.ChangedDecision(
                ticket_id=change.ticket_id,
                approved_now=change.after.approved,
                approved_then=change.before.approved,
                rule_now=change.after.rule,
            )
            for change in result.changed[:500]
        ],
    )


def refund_entry(row: dict[str, Any]) -> pb.RefundEntry:
    currency = str(row["currency"])
    entry = pb.RefundEntry(
        ticket_id=str(row["ticket_id"]),
        order_id=str(row["order_id"]),
        customer_id=str(row["customer_id"]),
        provider=str(row["provider"]),
        out_refund_no=str(row["out_refund_no"]),
        provider_refund_id=str(row["provider_refund_id"]),
        status=str(row["status"]),
        cash=money(currency, int(row["cash"])),
        goods=money(currency, int(row["goods"])),
        promotion=money(currency, int(row["promotion"])),
        coupon=money(currency, int(row["coupon"])),
        points=money(currency, int(row["points"])),
        shipping=money(currency, int(row["shipping"])),
        approved_by=str(row["approved_by"]),
    )
    entry.requested_at.CopyFrom(timestamp(row["requested_at"]))
    if row.get("settled_at") is not None:
        entry.settled_at.CopyFrom(timestamp(row["settled_at"]))
    return entry


# ---- integration events


def _lines(lines: tuple[RefundLine, ...], order: OrderSnapshot | None = None) -> list[pb.TicketLine]:
    return [
        pb.TicketLine(
            line_index=line.line_index,
            sku=order.lines[line.line_index].sku if order else "",
            quantity=line.quantity,
        )
        for line in lines
    ]


@bus.publishes(subjects.PUBLISHED)
def event_message(event: ev.Event) -> tuple[str, Message]:
    """A domain event → (its subject under the prefix, its proto message)."""
    if isinstance(event, ev.AlertRaised):
        return (
            "alerts.raised",
            alerts_pb.AlertRaised(
                kind=event.kind,
                severity=SEVERITIES.get(event.severity, 2),  # type: ignore[arg-type]
                source=SOURCE,
                order_id=event.order_id,
                message=event.message[:2000],
                dedupe_key=f"{event.kind}:{event.order_id}",
                customer_id=event.customer_id,
                roles=list(event.roles),
            ),
        )
    ids: dict[str, Any] = {
        "ticket_id": event.ticket_id,
        "order_id": event.order_id,
        "occurred_at": timestamp(event.at),
    }
    match event:
        case ev.TicketOpened():
            message: Message = events_pb.TicketOpened(
                **ids,
                customer_id=event.customer_id,
                kind=f"TICKET_KIND_{event.kind.value}",  # type: ignore[arg-type]
                reason=event.reason.value.upper(),
                lines=_lines(event.lines),
                refund_cash=money(event.quote.currency, event.quote.cash_minor),
            )
            subject = "aftersales.opened"
        case ev.TicketApproved():
            decision = pb.ApprovalDecision(
                approved=True,
                rule_set_version=event.rule_set_version,
                rule=event.rule,
                decided_by="" if event.by == ev.BY_RULES else event.by,
                conditions=[
                    pb.ConditionResult(
                        condition=f"{c.condition} {c.expected}".strip(), held=c.held, observed=c.observed
                    )
                    for c in event.conditions
                ],
            )
            message, subject = events_pb.TicketApproved(**ids, decision=decision), "aftersales.approved"
        case ev.TicketRejected():
            message = events_pb.TicketRejected(**ids, reason=event.note, decided_by=event.by)
            subject = "aftersales.rejected"
        case ev.TicketFlagged():
            message = events_pb.TicketEscalated(**ids, customer_id=event.customer_id, level="FLAGGED")
            subject = "aftersales.escalated"
        case ev.TicketEscalated():
            message = events_pb.TicketEscalated(**ids, customer_id=event.customer_id, level="ESCALATED")
            message.opened_at.CopyFrom(timestamp(event.opened_at))
            subject = "aftersales.escalated"
        case ev.ReturnReceived():
            message = events_pb.ReturnReceived(
                **ids,
                lines=[
                    pb.TicketLine(
                        line_index=r.line_index, quantity=r.quantity, received=r.quantity, damaged=r.damaged
                    )
                    for r in event.lines
                ],
                restocked=sum(r.quantity - r.damaged for r in event.lines),
                damaged=sum(r.damaged for r in event.lines),
            )
            subject = "aftersales.return_received"
        case ev.RefundRequested():
            message = events_pb.RefundRequested(
                **ids,
                provider=event.provider,
                out_refund_no=event.refund_no,
                voucher=voucher_message(event.voucher),
            )
            subject = "aftersales.refund_requested"
        case ev.Refunded():
            message = events_pb.Refunded(
                **ids,
                provider=event.provider,
                out_refund_no=event.refund_no,
                provider_refund_id=event.provider_refund_id,
                voucher=voucher_message(event.voucher),
                lines=[
                    pb.TicketLine(line_index=line.line_index, quantity=line.quantity)
                    for line in event.voucher.lines
                ],
            )
            subject = "aftersales.refunded"
        case ev.RefundFailed():
            message = events_pb.RefundFailed(
                **ids, out_refund_no=event.refund_no, status=event.status.value, reason=event.reason
            )
            subject = "aftersales.refund_failed"
        case ev.ReplacementShipped():
            message = events_pb.ReplacementShipped(**ids, shipment_id=event.shipment_id)
            subject = "aftersales.replacement_shipped"
        case ev.TicketClosed():
            outcome = "REFUNDED" if event.refunded else "CLOSED"
            message = events_pb.TicketClosed(**ids, outcome=f"TICKET_STATUS_{outcome}")  # type: ignore[arg-type]
            subject = "aftersales.closed"
        case ev.RetentionSuggested():
            suggestion = event.suggestion
            message = events_pb.RetentionSuggested(
                **ids,
                customer_id=event.customer_id,
                rule=suggestion.rule,
                coupon=money("CNY", suggestion.coupon_amount_minor),
                min_spend=money("CNY", suggestion.coupon_min_spend_minor),
                coupon_code=suggestion.coupon_code,
                hint=suggestion.size_hint,
                valid_until=timestamp(suggestion.valid_until),
            )
            subject = "aftersales.retention_suggested"
        case _:
            raise ValueError(f"no integration event for {type(event).__name__}")
    return subject, message
