"""Every proto ↔ domain conversion of the orders service, in one place: requests into commands,
domain objects into replies, and domain events into the integration events the outbox carries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from oms.aftersales.v1 import aftersales_pb2
from oms.aftersales.v1 import events_pb2 as aftersales_events
from oms.alerts.v1 import events_pb2 as alert_events
from oms.common.v1 import common_pb2
from oms.logistics.v1 import events_pb2 as logistics_events
from oms.logistics.v1 import logistics_pb2
from oms.orders.v1 import events_pb2, orders_pb2
from services.kit import bus, inputs
from services.kit.errors import InvalidArgument, PermissionDenied
from services.kit.status import in_field_order
from services.kit.timestamps import timestamp
from services.orders import handlers, subjects, views
from services.orders.domain import anchor, masking, model, reconciliation, risk, sla
from services.orders.domain import payments as pay
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    Order,
    OrderLine,
    Priority,
    is_currency_code,
)
from services.orders.domain.model import IngestOrder as IngestCommand
from services.orders.domain.model import violations as model_violations
from services.orders.domain.orchestration import Stored
from services.orders.domain.payments import PaymentRecord
from services.orders.domain.refunds import TicketReport, TicketStep
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.domain.shipping import Report, Shipment, ShipmentReport, ShippingPlan, Stage
from services.orders.handlers import channel_health

SEVERITIES = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def status_value(status: OrderStatus | None) -> str:
    return f"ORDER_STATUS_{status.value}" if status else "ORDER_STATUS_UNSPECIFIED"


@bus.publishes(subjects.PUBLISHED)
def integration_event(event: object, order: Order | None) -> tuple[str, Message] | None:
    """The integration event (subject, message) a domain event publishes, if any: the encoder the
    store's unit of work is built with (bootstrap), so every orders event takes this one path."""
    if isinstance(event, model.ServiceAlert):
        return "alerts.raised", alert(
            event.kind, event.severity, event.order_id, event.message, channel=event.channel
        )
    return _message(order, event) if order is not None else None


def event_messages(order: Order) -> list[tuple[str, Message]]:
    """The integration events for the domain events recorded on the order, in order."""
    return [found for event in order.events if (found := integration_event(event, order)) is not None]


def alert(
    kind: str,
    severity: str,
    order_id: str,
    text: str,
    customer_id: str = "",
    channel: str = "",
    roles: Sequence[str] = (),
) -> alert_events.AlertRaised:
    return alert_events.AlertRaised(
        kind=kind,
        severity=SEVERITIES.get(severity, 2),  # type: ignore[arg-type]
        source="orders",
        order_id=order_id,
        message=text[:2000],
        dedupe_key=f"{kind}:{order_id or channel}",
        customer_id=customer_id,
        channel=channel,
        roles=list(roles),
    )


def _money(order: model.Order, amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=order.currency, amount_minor=amount)


def _message(order: model.Order, event: object) -> tuple[str, Message] | None:
    oid = order.order_id
    match event:
        case model.OrderCreated(status=status):
            return "orders.created", events_pb2.OrderCreated(
                order_id=oid,
                channel=f"CHANNEL_{order.channel.value}",  # type: ignore[arg-type]
                channel_order_id=order.channel_order_id,
                status=status_value(status),  # type: ignore[arg-type]
                buyer_id=order.buyer_id,
                total=_money(order, order.payable_minor),
                line_count=len(order.lines),
            )
        case model.OrderUpdated(fields=fields):
            return "orders.updated", events_pb2.OrderUpdated(order_id=oid, fields=list(fields))
        case model.StatusChanged(previous=previous, status=status, reason=reason):
            return (
                "orders.status_changed",
                events_pb2.OrderStatusChanged(
                    order_id=oid,
                    from_status=status_value(previous),  # type: ignore[arg-type]
                    to_status=status_value(status),  # type: ignore[arg-type]
                    reason=reason[:2000],
                ),
            )
        case model.OrderPaid(paid_at=paid_at, amount_minor=amount, transaction_id=transaction):
            return "orders.paid", events_pb2.OrderPaid(
                order_id=oid,
                amount=_money(order, amount),
                paid_at=timestamp(paid_at),
                transaction_id=transaction,
                channel=f"CHANNEL_{order.channel.value}",  # type: ignore[arg-type]
            )
        case model.OrderAllocated(warehouses=warehouses):
            return "orders.allocated", events_pb2.OrderAllocated(order_id=oid, warehouse_ids=list(warehouses))
        case model.OrderCancelled(reason=reason, was_paid=was_paid):
            return "orders.cancelled", events_pb2.OrderCancelled(
                order_id=oid,
                reason=reason[:2000],
                was_paid=was_paid,
                refund_due=_money(order, order.payable_minor if was_paid else 0),
            )
        case model.OrderHeld(reason=reason):
            return "orders.held", events_pb2.OrderHeld(order_id=oid, reason=reason[:2000])
        case model.OrderReleased(status=status):
            return "orders.released", events_pb2.OrderReleased(
                order_id=oid,
                status=status_value(status),  # type: ignore[arg-type]
            )
        case model.OrderFrozen(reason=reason, attempted=attempted):
            return "orders.exception", events_pb2.OrderException(
                order_id=oid,
                reason=reason[:2000],
                attempted_status=status_value(attempted),  # type: ignore[arg-type]
            )
        case model.AlertRaised(kind=kind, severity=severity, message=text, roles=roles):
            return "alerts.raised", alert(
                kind, severity, oid, text, order.buyer_id, order.channel.value, roles
            )
        case model.RiskHeld(version=version, score=score, hits=hits, frozen=frozen):
            return "orders.risk_held", events_pb2.OrderRiskHeld(
                order_id=oid, rule_set_version=version, score=score, rules=list(hits), frozen=frozen
            )
        case model.SlaReached(level=level) if level >= 2:
            return "orders.sla_breached", events_pb2.OrderSlaBreached(
                order_id=oid,
                stage=event.stage,
                category=event.category,
                started_at=timestamp(event.started_at),
                deadline=timestamp(event.deadline),
                escalated_to=event.notify,
            )
    return None


# ---- proto → domain ------------------------------------------------------------------------------


def ingest_command(request: orders_pb2.IngestOrderRequest) -> IngestCommand:
    """The domain's command; what only the request can show wrong (an unknown enum number, amounts in
    another currency) is reported together with the domain's own findings, in field order."""
    found: list[tuple[str, str]] = []
    known_channel = request.channel in orders_pb2.Channel.values()
    if not known_channel:
        found.append(("channel", f"unknown value {request.channel}"))
    priority = _priority(request.priority, found)
    currency = request.lines[0].unit_price.currency_code if request.lines else ""
    if is_currency_code(currency):
        found += _other_currencies(request, currency)
    lines = tuple(
        OrderLine(
            sku=line.sku,
            title=line.title,
            quantity=line.quantity,
            unit_price_minor=line.unit_price.amount_minor,
            discount_minor=line.discount.amount_minor,
        )
        for line in request.lines
    )
    discounts = []
    for index, discount in enumerate(request.discounts):
        if discount.kind not in orders_pb2.DiscountKind.values():
            found.append((f"discounts[{index}].kind", f"unknown value {discount.kind}; {_DISCOUNT_KINDS}"))
        elif discount.kind == orders_pb2.DISCOUNT_KIND_UNSPECIFIED:
            found.append((f"discounts[{index}].kind", _DISCOUNT_KINDS))
        else:
            discounts.append(
                Discount(
                    DiscountKind(orders_pb2.DiscountKind.Name(discount.kind).removeprefix("DISCOUNT_KIND_")),
                    discount.amount.amount_minor,
                    discount.reference,
                )
            )
    command = IngestCommand(
        channel=channel_of(request.channel) if known_channel else None,
        channel_order_id=request.channel_order_id,
        buyer_id=request.buyer_id,
        currency=currency,
        lines=lines,
        shipping_address=_address(request.shipping_address) if request.HasField("shipping_address") else None,
        shipping_fee_minor=request.shipping_fee.amount_minor,
        placed_at=optional_time(request, "placed_at"),
        discounts=tuple(discounts),
        channel_status=request.channel_status,
        paid_at=optional_time(request, "paid_at"),
        cancelled=request.cancelled,
        channel_modified_at=optional_time(request, "channel_modified_at"),
        buyer_note=request.buyer_note,
        priority=priority,
    )
    if found:
        named = {field for field, _ in found}
        found += [v for v in model_violations(command) if v[0] not in named]
        raise InvalidArgument.of(in_field_order(found, orders_pb2.IngestOrderRequest.DESCRIPTOR))
    return command


_DISCOUNT_KINDS = "must be PROMOTION, COUPON or POINTS"


def _priority(value: int, found: list[tuple[str, str]]) -> Priority | None:
    """UNSPECIFIED is None (standard); an unknown number is reported with the request's other faults."""
    if value not in orders_pb2.OrderPriority.values():
        found.append(("priority", f"unknown value {value}"))
        return None
    if value == orders_pb2.ORDER_PRIORITY_UNSPECIFIED:
        return None
    return Priority(orders_pb2.OrderPriority.Name(value).removeprefix("ORDER_PRIORITY_"))


def _other_currencies(request: orders_pb2.IngestOrderRequest, currency: str) -> list[tuple[str, str]]:
    """Every amount must be in the order's currency, its first line's."""
    amounts = [(f"lines[{i}].unit_price", line.unit_price) for i, line in enumerate(request.lines)]
    amounts += [
        (f"lines[{i}].discount", line.discount)
        for i, line in enumerate(request.lines)
        if line.HasField("discount")
    ]
    if request.HasField("shipping_fee"):
        amounts.append(("shipping_fee", request.shipping_fee))
    amounts += [(f"discounts[{i}].amount", d.amount) for i, d in enumerate(request.discounts)]
    return [
        (f"{where}.currency_code", f"must be {currency}, the currency of the order's first line")
        for where, money in amounts
        if money.currency_code != currency
    ]


def channel_payload(request: orders_pb2.IngestChannelOrderRequest) -> handlers.ChannelPayload:
    if request.HasField("payload") and request.payload_json:
        raise InvalidArgument("payload_json", "send payload or payload_json, not both")
    if request.payload_json:
        payload = inputs.loads(request.payload_json, "payload_json")
        if not isinstance(payload, dict):
            raise InvalidArgument("payload_json", "must be a JSON object")
        return handlers.ChannelPayload(channel_of(request.channel), payload)
    if not request.HasField("payload"):
        raise InvalidArgument("payload", "is required: the channel's order as a JSON object")
    payload = json_format.MessageToDict(request.payload)
    inputs.check_document(payload, "payload")
    return handlers.ChannelPayload(channel_of(request.channel), _whole_numbers(payload))


def _whole_numbers(value: Any) -> Any:
    """Struct carries every number as a double; a channel's ids and counts are integers again."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def notification(request: orders_pb2.ReportPaymentRequest, provider: str) -> pay.PaymentNotification:
    if request.status not in orders_pb2.PaymentStatus.values():
        raise InvalidArgument(
            "status", f"unknown value {request.status}; must be SUCCESS, FAILED, CLOSED or REFUND"
        )
    if request.status == orders_pb2.PAYMENT_STATUS_UNSPECIFIED:
        raise InvalidArgument("status", "must be SUCCESS, FAILED, CLOSED or REFUND")
    if not request.HasField("paid_at"):
        raise InvalidArgument("paid_at", "is required")
    return pay.PaymentNotification(
        provider=provider,
        transaction_id=request.transaction_id,
        merchant_order_no=request.merchant_order_no,
        currency=request.amount.currency_code,
        amount_minor=request.amount.amount_minor,
        paid_at=request.paid_at.ToDatetime(tzinfo=UTC),
        status=pay.PaymentStatus(
            orders_pb2.PaymentStatus.Name(request.status).removeprefix("PAYMENT_STATUS_")
        ),
    )


def order_filter(
    message: orders_pb2.OrderFilter, scope: Scope | None = None, roles: Iterable[str] = ()
) -> views.OrderFilter:
    """The query's filter; a lookup by the full phone only for roles that see it unmasked (masking)."""
    if message.buyer_phone and not masking.may_match_sealed(roles):
        raise PermissionDenied(
            "filter.buyer_phone: looking orders up by phone is only for roles that see the phone unmasked"
        )
    statuses: list[OrderStatus] = []
    for index, value in enumerate(message.statuses):
        if value not in orders_pb2.OrderStatus.values():
            raise InvalidArgument(f"filter.statuses[{index}]", f"unknown value {value}")
        if value == orders_pb2.ORDER_STATUS_UNSPECIFIED:
            raise InvalidArgument(f"filter.statuses[{index}]", "is not an order status")
        statuses.append(OrderStatus(orders_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")))
    found_channels: list[Channel] = []
    for index, number in enumerate(message.channels):
        found = channel_of(number, f"filter.channels[{index}]")
        if found is None:
            raise InvalidArgument(f"filter.channels[{index}]", "is not a channel")
        found_channels.append(found)
    return views.OrderFilter(
        statuses=tuple(statuses),
        channels=tuple(found_channels),
        created_from=optional_time(message, "created_from"),
        created_to=optional_time(message, "created_to"),
        warehouse_id=message.warehouse_id,
        buyer_id=message.buyer_id,
        buyer_phone=message.buyer_phone,
        scope=scope or EVERYTHING,
    )


def optional_time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def channel_of(value: int, field: str = "channel") -> Channel | None:
    """None when unset; a number this API does not know is refused, never read as "unset"."""
    if value == orders_pb2.CHANNEL_UNSPECIFIED:
        return None
    if value not in orders_pb2.Channel.values():
        raise InvalidArgument(field, f"unknown value {value}")
    return Channel(orders_pb2.Channel.Name(value).removeprefix("CHANNEL_"))


def channel_value(channel: Channel | None) -> str:
    return f"CHANNEL_{channel.value}" if channel else "CHANNEL_UNSPECIFIED"


def _address(address: common_pb2.Address) -> Address:
    return Address(
        recipient_name=address.recipient_name,
        phone=address.phone,
        country_code=address.country_code,
        province=address.province,
        city=address.city,
        district=address.district,
        detail=address.detail,
        postal_code=address.postal_code,
    )


# ---- domain → proto ------------------------------------------------------------------------------


def stored_message(stored: Stored, reveal: bool, now: datetime | None = None) -> orders_pb2.Order:
    message = order_message(
        stored.order, reveal, "dead-lettered" if stored.step_dead else (stored.step or "")
    )
    timer = sla_timer_message(stored.order.order_id, stored.order.status.value, stored.sla, now)
    if timer is not None:
        message.sla.CopyFrom(timer)
    return message


_LEVELS = {
    sla.Level.GREEN: orders_pb2.SLA_LEVEL_GREEN,
    sla.Level.AMBER: orders_pb2.SLA_LEVEL_AMBER,
    sla.Level.RED: orders_pb2.SLA_LEVEL_RED,
}


def sla_level(value: int) -> sla.Level:
    """SLA_LEVEL_AMBER (also for UNSPECIFIED) or SLA_LEVEL_RED as the minimum level to list."""
    if value in (orders_pb2.SLA_LEVEL_UNSPECIFIED, orders_pb2.SLA_LEVEL_AMBER):
        return sla.Level.AMBER
    if value == orders_pb2.SLA_LEVEL_RED:
        return sla.Level.RED
    raise InvalidArgument("min_level", "must be SLA_LEVEL_AMBER (the default) or SLA_LEVEL_RED")


def _timer(row: views.TimerRow, now: datetime) -> orders_pb2.SlaTimer:
    stage, _, category = row.queue.partition("/")
    return orders_pb2.SlaTimer(
        order_id=row.order_id,
        status=f"ORDER_STATUS_{row.status}",  # type: ignore[arg-type]
        queue=row.queue,
        stage=stage,
        category=category,
        level=_LEVELS[row.level],
        started_at=timestamp(row.started_at),
        warn_at=timestamp(row.warn_at),
        deadline=timestamp(row.deadline),
        overdue_seconds=max(0, int((now - row.deadline).total_seconds())),
        owner=row.owner,
        escalated_to=row.escalated_to,
    )


def sla_timer_message(
    order_id: str, status: str, state: sla.SlaState, now: datetime | None = None
) -> orders_pb2.SlaTimer | None:
    timer = state.timer
    if timer is None:
        return None
    now = now or datetime.now(UTC)
    row = views.TimerRow(
        order_id,
        status,
        state.queue(),
        timer.level_at(now),
        timer.started_at,
        timer.warn_at,
        timer.deadline,
        state.owner,
        state.escalated_to,
    )
    return _timer(row, now)


def sla_timers_message(
    now: datetime, rows: Sequence[views.TimerRow], counts: dict[tuple[str, sla.Level], int], token: str
) -> orders_pb2.ListSlaTimersResponse:
    return orders_pb2.ListSlaTimersResponse(
        timers=[_timer(row, now) for row in rows],
        page=common_pb2.PageResponse(next_page_token=token),
        counts=[
            orders_pb2.SlaCount(queue=queue, level=_LEVELS[level], count=count)
            for (queue, level), count in sorted(counts.items())
        ],
        as_of=timestamp(now),
    )


def rule_set_message(record: risk.RuleSetRecord) -> orders_pb2.RiskRuleSet:
    message = orders_pb2.RiskRuleSet(
        version=record.version,
        status=record.status,
        document_json=json.dumps(record.document, ensure_ascii=False, separators=(",", ":")),
        note=record.note,
        created_at=timestamp(record.created_at),
        created_by=record.created_by,
    )
    if record.activated_at is not None:
        message.activated_at.CopyFrom(timestamp(record.activated_at))
    return message


def dry_run_message(run: risk.DryRun) -> orders_pb2.DryRunRiskRuleSetResponse:
    return orders_pb2.DryRunRiskRuleSetResponse(
        version=run.version,
        orders=run.orders,
        would_hold=run.held,
        held_at_the_time=run.held_now,
        per_rule=[orders_pb2.RiskRuleHits(rule_id=item.rule_id, hits=item.hits) for item in run.per_rule],
        newly_held=list(run.newly_held),
        no_longer_held=list(run.no_longer_held),
    )


def evaluation_message(record: risk.EvaluationRecord) -> orders_pb2.RiskEvaluation:
    results = []
    for result in record.results:
        seen = struct_pb2.Struct()
        seen.update(result.get("seen", {}))
        results.append(
            orders_pb2.RiskRuleResult(
                rule_id=result["rule"],
                hit=result["hit"],
                action=result["action"],
                score=result["score"],
                seen=seen,
            )
        )
    message = orders_pb2.RiskEvaluation(
        order_id=record.order_id,
        evaluated_at=timestamp(record.evaluated_at),
        rule_set_version=record.version,
        score=record.score,
        outcome=record.outcome,
        frozen=record.frozen,
        results=results,
        review=record.review,
        reviewed_by=record.reviewed_by,
        review_note=record.review_note,
    )
    if record.reviewed_at is not None:
        message.reviewed_at.CopyFrom(timestamp(record.reviewed_at))
    return message


def rule_stats_message(rows: Sequence[risk.RuleStats]) -> orders_pb2.GetRiskRuleStatsResponse:
    return orders_pb2.GetRiskRuleStatsResponse(
        rules=[
            orders_pb2.RiskRuleStats(
                rule_id=row.rule_id,
                evaluated=row.evaluated,
                hits=row.hits,
                approved=row.approved,
                cancelled=row.cancelled,
                false_positive_rate=row.approved / (row.approved + row.cancelled)
                if row.approved + row.cancelled
                else 0.0,
            )
            for row in rows
        ]
    )


def sla_owners_message(queue: str, owners: sla.Owners) -> orders_pb2.SlaOwners:
    return orders_pb2.SlaOwners(queue=queue, owner=owners.owner, backup=owners.backup)


def order_message(order: Order, reveal: bool = False, pending_step: str = "") -> orders_pb2.Order:
    def money(amount: int) -> common_pb2.Money:
        return common_pb2.Money(currency_code=order.currency, amount_minor=amount)

    address = order.shipping_address
    name, phone, detail, postal = address.recipient_name, address.phone, address.detail, address.postal_code
    if not reveal:
        name, phone, detail = masking.mask_name(name), masking.mask_phone(phone), masking.mask_detail(detail)
        postal = ""
    message = orders_pb2.Order(
        order_id=order.order_id,
        channel=channel_value(order.channel),  # type: ignore[arg-type]
        channel_order_id=order.channel_order_id,
        status=status_value(order.status),  # type: ignore[arg-type]
        buyer_id=order.buyer_id,
        lines=[
            orders_pb2.OrderLine(
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
                discount=money(line.discount_minor),
                amounts=orders_pb2.LineAmounts(
                    goods=money(share.goods_minor),
                    promotion=money(share.promotion_minor),
                    coupon=money(share.coupon_minor),
                    points=money(share.points_minor),
                    shipping=money(share.shipping_minor),
                    paid=money(share.paid_minor),
                ),
            )
            for line, share in zip(order.lines, order.shares, strict=True)
        ],
        shipping_address=common_pb2.Address(
            recipient_name=name,
            phone=phone,
            country_code=address.country_code,
            province=address.province,
            city=address.city,
            district=address.district,
            detail=detail,
            postal_code=postal,
        ),
        shipping_fee=money(order.shipping_fee_minor),
        total=money(order.payable_minor),
        placed_at=timestamp(order.placed_at),
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        discounts=[
            orders_pb2.Discount(
                kind=f"DISCOUNT_KIND_{discount.kind.value}",  # type: ignore[arg-type]
                amount=money(discount.amount_minor),
                reference=discount.reference,
            )
            for discount in order.discounts
        ],
        status_reason=order.status_reason,
        warehouse_ids=list(order.warehouses),
        waybill_no=order.waybill_no,
        channel_status=order.channel_status,
        buyer_note=order.buyer_note,
        masked=not reveal,
        pending_step=pending_step,
        priority=f"ORDER_PRIORITY_{order.priority.value}",  # type: ignore[arg-type]
    )
    if order.paid_at is not None:
        message.paid_at.CopyFrom(timestamp(order.paid_at))
    for shipment in order.shipments:
        shown = message.shipments.add(
            shipment_id=shipment.shipment_id,
            warehouse_id=shipment.warehouse_id,
            carrier=shipment.carrier,
            stage=shipment.stage.value,
            waybill_no=shipment.waybill_no,
        )
        if shipment.scanned_out_at is not None:
            shown.scanned_out_at.CopyFrom(timestamp(shipment.scanned_out_at))
        if shipment.delivered_at is not None:
            shown.delivered_at.CopyFrom(timestamp(shipment.delivered_at))
    refunds = order.refunds
    if refunds.settled or refunds.in_progress:
        message.refunds.CopyFrom(
            orders_pb2.OrderRefunds(
                in_progress=bool(refunds.in_progress),
                cash=money(refunds.cash_minor),
                points=money(refunds.points_minor),
                lines=[orders_pb2.RefundedLine(line_index=i, quantity=q) for i, q in refunds.units],
                refunding_ticket_ids=sorted(refunds.in_progress),
            )
        )
    return message


def payment_message(record: PaymentRecord) -> orders_pb2.Payment:
    note = record.notification
    return orders_pb2.Payment(
        payment_id=record.payment_id,
        provider=note.provider,
        transaction_id=note.transaction_id,
        merchant_order_no=note.merchant_order_no,
        order_id=record.order_id or "",
        amount=common_pb2.Money(currency_code=note.currency, amount_minor=note.amount_minor),
        paid_at=timestamp(note.paid_at),
        status=f"PAYMENT_STATUS_{note.status.value}",  # type: ignore[arg-type]
        state=f"PAYMENT_STATE_{record.state.value}",  # type: ignore[arg-type]
        reason=record.reason,
        attempts=record.attempts,
        received_at=timestamp(record.received_at),
    )


def statement_message(report: dict[str, Any]) -> orders_pb2.ImportStatementResponse:
    def item(found: dict[str, Any]) -> orders_pb2.ReconciliationItem:
        message = orders_pb2.ReconciliationItem(
            kind=found["kind"],
            order_id=found["order_id"],
            payment_id=found["payment_id"],
            candidate_order_ids=found["candidates"],
            detail=found["detail"],
        )
        row = found["row"]
        if row is not None:
            message.row.CopyFrom(
                orders_pb2.StatementRow(
                    transaction_id=row["transaction_id"],
                    merchant_order_no=row["merchant_order_no"],
                    amount=common_pb2.Money(currency_code=row["currency"], amount_minor=row["amount_minor"]),
                    paid_at=timestamp(datetime.fromisoformat(row["paid_at"])),
                )
            )
        return message

    return orders_pb2.ImportStatementResponse(
        statement_id=report["statement_id"],
        rows=report["rows"],
        matched=report["matched"],
        paid_not_recorded=[item(found) for found in report["paid_not_recorded"]],
        recorded_not_paid=[item(found) for found in report["recorded_not_paid"]],
        amount_mismatches=[item(found) for found in report["amount_mismatches"]],
    )


OUTCOMES = {outcome: getattr(orders_pb2, f"INGEST_OUTCOME_{outcome.value}") for outcome in handlers.Outcome}


def outcome_value(outcome: handlers.Outcome) -> Any:
    return OUTCOMES[outcome]


def batch_items(request: orders_pb2.IngestOrdersRequest) -> list[IngestCommand | handlers.ChannelPayload]:
    """The batch's items as commands or channel payloads; a fault names the item it is in."""
    items: list[IngestCommand | handlers.ChannelPayload] = []
    for index, item in enumerate(request.items):
        which = item.WhichOneof("item")
        if which == "order":
            try:
                items.append(ingest_command(item.order))
            except InvalidArgument as error:
                raise error.within(f"items[{index}].order") from None
        elif which == "channel_order":
            items.append(channel_payload(item.channel_order))
        else:
            raise InvalidArgument(f"items[{index}]", "needs an order or a channel_order")
    return items


def batch_reply(results: Sequence[handlers.Ingested]) -> orders_pb2.IngestOrdersResponse:
    counts = {outcome: 0 for outcome in handlers.Outcome}
    reply = orders_pb2.IngestOrdersResponse()
    for result in results:
        counts[result.outcome] += 1
        reply.results.append(
            orders_pb2.IngestResult(
                index=result.index,
                outcome=outcome_value(result.outcome),
                order_id=result.order.order_id if result.order else "",
                channel=channel_value(result.channel),  # type: ignore[arg-type]
                channel_order_id=result.channel_order_id,
                error_field=result.error_field,
                error=result.error,
            )
        )
    reply.created = counts[handlers.Outcome.CREATED]
    reply.unchanged = counts[handlers.Outcome.UNCHANGED]
    reply.updated = counts[handlers.Outcome.UPDATED]
    reply.stale = counts[handlers.Outcome.STALE]
    reply.rejected = counts[handlers.Outcome.REJECTED]
    return reply


def payment_state(value: int) -> str:
    """A PaymentState filter as the domain names it; "" for none."""
    return orders_pb2.PaymentState.Name(value).removeprefix("PAYMENT_STATE_") if value else ""  # type: ignore[arg-type]


def statement_rows(request: orders_pb2.ImportStatementRequest) -> list[reconciliation.Row]:
    """The statement's rows, as messages or as the provider's CSV (in CNY unless said otherwise)."""
    currency = request.currency_code or "CNY"
    if not request.rows:
        return reconciliation.parse_csv(request.csv, currency)
    return [
        reconciliation.Row(
            transaction_id=row.transaction_id,
            merchant_order_no=row.merchant_order_no,
            currency=row.amount.currency_code or currency,
            amount_minor=row.amount.amount_minor,
            paid_at=row.paid_at.ToDatetime(tzinfo=UTC),
        )
        for row in request.rows
    ]


def source_report(request: orders_pb2.ReportSourceStatusRequest) -> handlers.SourceReport:
    return handlers.SourceReport(
        source=request.source,
        order_id=request.order_id,
        channel=channel_of(request.channel),
        channel_order_id=request.channel_order_id,
        fields=json_format.MessageToDict(request.fields) if request.HasField("fields") else {},
        reported_at=optional_time(request, "reported_at"),
    )


def source_report_reply(
    order: Order, observation: anchor.Observation | None, changed: bool, reveal: bool
) -> orders_pb2.ReportSourceStatusResponse:
    return orders_pb2.ReportSourceStatusResponse(
        order=order_message(order, reveal),
        rule=observation.rule if observation else "",
        means=[status_value(status) for status in sorted(observation.means)] if observation else [],  # type: ignore[misc]
        status_changed=changed,
    )


def stats_message(stats: views.OrderStats) -> orders_pb2.GetOrderStatsResponse:
    return orders_pb2.GetOrderStatsResponse(
        statuses=[
            orders_pb2.StatusStats(
                status=status_value(row.status),  # type: ignore[arg-type]
                orders=row.orders,
                average_dwell_seconds=row.average_dwell_seconds,
            )
            for row in stats.statuses
        ],
        total_orders=stats.total_orders,
        exception_ratio=stats.exception_ratio,
        stages=[
            orders_pb2.StageDuration(
                stage=row.stage,
                orders=row.orders,
                average_hours=row.average_hours,
                p50_hours=row.p50_hours,
                p90_hours=row.p90_hours,
            )
            for row in stats.stages
        ],
        definitions=list(stats.definitions),
    )


def timeline_message(entries: Sequence[views.TimelineRow]) -> orders_pb2.GetTimelineResponse:
    return orders_pb2.GetTimelineResponse(
        entries=[
            orders_pb2.TimelineEntry(
                sequence=entry.sequence,
                at=timestamp(entry.at),
                kind=entry.kind,
                actor_type=entry.actor_type,
                actor_id=entry.actor_id,
                source=entry.source,
                from_status=status_value(entry.from_status),  # type: ignore[arg-type]
                to_status=status_value(entry.to_status),  # type: ignore[arg-type]
                detail=entry.detail,
                trace_id=entry.trace_id,
                linked_trace_id=entry.linked_trace_id,
            )
            for entry in entries
        ]
    )


def dead_letters_message(
    rows: Sequence[views.DeadLetterRow], token: str
) -> orders_pb2.ListDeadLettersResponse:
    return orders_pb2.ListDeadLettersResponse(
        dead_letters=[
            orders_pb2.DeadLetter(
                dead_letter_id=row.dead_letter_id,
                kind=row.kind,
                order_id=row.order_id or "",
                error=row.error,
                attempts=row.attempts,
                failed_at=timestamp(row.failed_at),
            )
            for row in rows
        ],
        page=common_pb2.PageResponse(next_page_token=token),
    )


def rules_message(rules: anchor.RuleBook) -> orders_pb2.GetStatusRulesResponse:
    return orders_pb2.GetStatusRulesResponse(
        version=rules.version,
        rules=[
            orders_pb2.StatusRule(
                name=rule.name,
                source=rule.source,
                when=[condition.text for condition in rule.when],
                status=status_value(rule.status),  # type: ignore[arg-type]
                means=[status_value(status) for status in sorted(rule.means)],  # type: ignore[misc]
                waybill_from=rule.waybill_from or "",
                scan_out=rule.scan_out,
                raw_status_field=rule.raw_status_field or "",
            )
            for rule in rules.rules
        ],
    )


def drift_message(report: views.DriftReport) -> orders_pb2.GetDriftReportResponse:
    return orders_pb2.GetDriftReportResponse(
        drifts=[
            orders_pb2.Drift(
                order_id=drift.order_id,
                source=drift.source,
                canonical_status=status_value(drift.canonical_status),  # type: ignore[arg-type]
                source_status=drift.source_status,
                source_means=[status_value(status) for status in drift.source_means],  # type: ignore[misc]
                canonical_age_seconds=drift.canonical_age_seconds,
                source_age_seconds=drift.source_age_seconds,
            )
            for drift in report.drifts
        ],
        per_source=dict(report.per_source),
        generated_at=timestamp(report.generated_at),
    )


def quarantine_message(rows: Sequence[views.QuarantineRow], token: str) -> orders_pb2.ListQuarantineResponse:
    return orders_pb2.ListQuarantineResponse(
        payloads=[
            orders_pb2.QuarantinedPayload(
                quarantine_id=row.quarantine_id,
                channel=channel_value(row.channel),  # type: ignore[arg-type]
                channel_order_id=row.channel_order_id,
                error_field=row.error_field,
                reason=row.reason,
                payload_json=row.payload,
                received_at=timestamp(row.received_at),
            )
            for row in rows
        ],
        page=common_pb2.PageResponse(next_page_token=token),
    )


# ---- logistics: the shipments orders asks for, and what logistics says about them ---------------

# routing's carriers that keep goods chilled: their parcels are picked first (logistics' pick priority)
CHILLED_CARRIERS = frozenset({"SF-COLD"})
_LOGISTICS_PRIORITIES = {
    Priority.STANDARD: logistics_pb2.PRIORITY_STANDARD,
    Priority.EXPEDITED: logistics_pb2.PRIORITY_EXPEDITED,
    Priority.MEMBER: logistics_pb2.PRIORITY_MEMBER,
}
_STAGES = {
    logistics_pb2.SHIPMENT_STATUS_CREATED: Stage.CREATED,
    logistics_pb2.SHIPMENT_STATUS_PICKING: Stage.CREATED,
    logistics_pb2.SHIPMENT_STATUS_PICKED: Stage.PICKED,
    logistics_pb2.SHIPMENT_STATUS_PACKED: Stage.PACKED,
    logistics_pb2.SHIPMENT_STATUS_SHIPPED: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_PICKED_UP: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_IN_TRANSIT: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_OUT_FOR_DELIVERY: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_REFUSED: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_RETURNED: Stage.SHIPPED,
    logistics_pb2.SHIPMENT_STATUS_DELIVERED: Stage.DELIVERED,
    logistics_pb2.SHIPMENT_STATUS_CANCELLED: Stage.CANCELLED,
}


def shipments_request(
    order: Order, plan: ShippingPlan, timer: sla.SlaState | None = None
) -> logistics_pb2.CreateShipmentsRequest:
    """What logistics needs to open the order's shipments: who and where (the full address, opened
    from its seal by the store), how urgent (its priority, and its SLA: the fulfilment deadline the
    warehouse picks by, and a fresh or cold-chain category that is picked first), and one planned
    shipment per warehouse the order's stock is committed at, with routing's carrier for it. Raises
    NoParcelPlanned for a warehouse the plan has no carrier for."""
    address = order.shipping_address
    titles: dict[str, str] = {}
    for line in order.lines:
        titles.setdefault(line.sku, line.title)
    deadline = timer.deadline if timer is not None and timer.stage is sla.Stage.FULFILMENT else None
    category = timer.terms.category if timer is not None and timer.terms is not None else ""
    request = logistics_pb2.CreateShipmentsRequest(
        order_id=order.order_id,
        customer_id=order.buyer_id,
        channel=order.channel.value,
        address=common_pb2.Address(
            recipient_name=address.recipient_name,
            phone=address.phone,
            country_code=address.country_code,
            province=address.province,
            city=address.city,
            district=address.district,
            detail=address.detail,
            postal_code=address.postal_code,
        ),
        priority=_LOGISTICS_PRIORITIES[order.priority],
        shipments=[
            logistics_pb2.PlannedShipment(
                warehouse_id=parcel.warehouse_id,
                carrier=parcel.carrier,
                service=parcel.service,
                lines=[
                    logistics_pb2.ShipmentLine(
                        sku=sku,
                        title=titles.get(sku, sku)[:500],
                        quantity=quantity,
                        goods_type=_goods_type(parcel.carrier, category),
                    )
                    for sku, quantity in parcel.lines
                ],
            )
            for parcel in plan.for_warehouses(order.warehouses or plan_warehouses(plan))
        ],
        decision_id=plan.decision_id,
    )
    if deadline is not None:
        request.deadline.FromDatetime(deadline.astimezone(UTC))
    return request


def _goods_type(carrier: str, sla_category: str) -> str:
    """Logistics' goods type, which its pick order puts first when perishable: a chilled carrier's
    parcel is cold chain; an order whose SLA category is `fresh` or `cold_chain` (its strictest line's)
    is that."""
    if carrier in CHILLED_CARRIERS or sla_category == "cold_chain":
        return "cold_chain"
    return "fresh" if sla_category == "fresh" else "normal"


def plan_warehouses(plan: ShippingPlan) -> tuple[str, ...]:
    return tuple(parcel.warehouse_id for parcel in plan.parcels)


def shipment_of(message: logistics_pb2.Shipment) -> Shipment:
    """Logistics' shipment as the order keeps it."""
    waybill = message.waybill.waybill_no if message.HasField("waybill") else ""
    return Shipment(
        shipment_id=message.shipment_id,
        warehouse_id=message.warehouse_id,
        carrier=message.carrier,
        stage=_STAGES.get(message.status, Stage.CREATED),
        waybill_no=waybill,
        scanned_out_at=optional_time(message, "scanned_out_at"),
        delivered_at=optional_time(message, "delivered_at"),
    )


def _node(value: int) -> str:
    return logistics_pb2.TrackingNode.Name(value).removeprefix("TRACKING_NODE_") if value else ""


def shipment_report(event: Message) -> ShipmentReport | None:
    """A logistics event as a report about one of an order's shipments (None: not one orders follows)."""
    when = optional_time(event, "occurred_at")
    match event:
        case logistics_events.ShipmentPicked():
            return ShipmentReport(
                Report.PICKED, event.order_id, event.shipment_id, when, warehouse_id=event.warehouse_id
            )
        case logistics_events.ShipmentPacked():
            return ShipmentReport(
                Report.PACKED, event.order_id, event.shipment_id, when, warehouse_id=event.warehouse_id
            )
        case logistics_events.WaybillCreated():
            return ShipmentReport(
                Report.WAYBILL,
                event.order_id,
                event.shipment_id,
                when,
                warehouse_id=event.warehouse_id,
                carrier=event.carrier,
                waybill_no=event.waybill_no,
            )
        case logistics_events.WaybillFailed():
            detail = f"{event.reason} (after {event.attempts} attempts; in the dead-letter list)"
            return ShipmentReport(
                Report.WAYBILL_FAILED,
                event.order_id,
                event.shipment_id,
                when,
                carrier=event.carrier,
                detail=detail,
            )
        case logistics_events.ShipmentScannedOut():
            return ShipmentReport(
                Report.SCANNED_OUT,
                event.order_id,
                event.shipment_id,
                when,
                warehouse_id=event.warehouse_id,
                carrier=event.carrier,
                waybill_no=event.waybill_no,
            )
        case logistics_events.TrackingUpdated():
            return ShipmentReport(
                Report.TRACKING,
                event.order_id,
                event.shipment_id,
                optional_time(event, "scanned_at") or when,
                carrier=event.carrier,
                waybill_no=event.waybill_no,
                node=_node(event.node),
                detail=event.description,
                area=event.area,
                via=logistics_pb2.TrackingSource.Name(event.source).removeprefix("TRACKING_SOURCE_").lower()
                if event.source
                else "",
            )
        case logistics_events.ShipmentDelivered():
            return ShipmentReport(
                Report.DELIVERED,
                event.order_id,
                event.shipment_id,
                optional_time(event, "delivered_at") or when,
                waybill_no=event.waybill_no,
            )
        case logistics_events.ShipmentException():
            return ShipmentReport(
                Report.EXCEPTION,
                event.order_id,
                event.shipment_id,
                when,
                waybill_no=event.waybill_no,
                node=_node(event.node),
                detail=event.description,
            )
        case logistics_events.ShipmentReturned():
            return ShipmentReport(
                Report.RETURNED,
                event.order_id,
                event.shipment_id,
                optional_time(event, "returned_at") or when,
                waybill_no=event.waybill_no,
                refused=event.refused,
            )
    return None


def _cash(voucher: Any) -> tuple[int, int]:
    return voucher.cash.amount_minor, voucher.points.amount_minor


def ticket_report(event: Message) -> TicketReport | None:
    """An after-sales event as a report about one of an order's tickets (None: not one orders follows)."""
    when = optional_time(event, "occurred_at")
    ticket, order = getattr(event, "ticket_id", ""), getattr(event, "order_id", "")
    match event:
        case aftersales_events.TicketOpened():
            lines = ", ".join(f"line {line.line_index} × {line.quantity}" for line in event.lines)
            kind = aftersales_pb2.TicketKind.Name(event.kind).removeprefix("TICKET_KIND_").lower()
            detail = f"{kind} for {event.reason.lower()}: {lines}"
            return TicketReport(TicketStep.OPENED, ticket, order, detail, when, customer_id=event.customer_id)
        case aftersales_events.TicketApproved():
            decision = event.decision
            by = (
                f"rules v{decision.rule_set_version} ({decision.rule})"
                if decision.rule_set_version
                else decision.decided_by
            )
            return TicketReport(TicketStep.APPROVED, ticket, order, f"approved by {by}", when)
        case aftersales_events.TicketRejected():
            return TicketReport(
                TicketStep.REJECTED, ticket, order, f"rejected by {event.decided_by}: {event.reason}", when
            )
        case aftersales_events.TicketEscalated():
            step = TicketStep.FLAGGED if event.level == "FLAGGED" else TicketStep.ESCALATED
            detail = f"{event.level.lower()}: not answered in time"
            return TicketReport(
                step, ticket, order, detail, when, customer_id=event.customer_id, overdue=True
            )
        case aftersales_events.ReturnReceived():
            received = f"{event.restocked} restocked, {event.damaged} damaged"
            detail = f"return received at {event.warehouse_id}: {received}"
            return TicketReport(TicketStep.RETURN_RECEIVED, ticket, order, detail, when)
        case aftersales_events.RefundRequested():
            cash, points = _cash(event.voucher)
            detail = f"refund of {cash} sent to {event.provider} ({event.out_refund_no})"
            return TicketReport(TicketStep.REFUND_REQUESTED, ticket, order, detail, when, cash, points)
        case aftersales_events.Refunded():
            cash, points = _cash(event.voucher)
            units = tuple((line.line_index, line.quantity) for line in event.lines)
            detail = (
                f"{cash} refunded by {event.provider} ({event.provider_refund_id or event.out_refund_no})"
            )
            if points:
                detail += f", {points} in points returned"
            return TicketReport(TicketStep.REFUNDED, ticket, order, detail, when, cash, points, units)
        case aftersales_events.RefundFailed():
            detail = f"refund {event.out_refund_no} {event.status}: {event.reason}"
            return TicketReport(TicketStep.REFUND_FAILED, ticket, order, detail, when)
        case aftersales_events.TicketClosed():
            outcome = aftersales_pb2.TicketStatus.Name(event.outcome).removeprefix("TICKET_STATUS_").lower()
            return TicketReport(TicketStep.CLOSED, ticket, order, f"closed ({outcome})", when)
    return None


def channel_health_message(found: list[channel_health.ChannelHealth]) -> orders_pb2.GetChannelHealthResponse:
    reply = orders_pb2.GetChannelHealthResponse()
    for health in found:
        entry = reply.channels.add(
            channel=f"CHANNEL_{health.channel}",  # type: ignore[arg-type]
            token_state=f"CHANNEL_TOKEN_STATE_{health.token_state.value}",  # type: ignore[arg-type]
            api_calls=health.api.calls,
            api_error_rate=health.api.error_rate,
            api_latency_p50_ms=health.api.latency_p50_ms or 0.0,
            api_latency_p99_ms=health.api.latency_p99_ms or 0.0,
            payload_p50_bytes=round(health.payload_p50_bytes or 0),
            payload_p99_bytes=round(health.payload_p99_bytes or 0),
            open_alerts=sorted(health.open_alerts),
            last_poll_error=health.last_poll_error,
            token_refresh_error=health.refresh_error,
        )
        for code, count in sorted(health.api.error_codes.items()):
            entry.api_errors.add(code=code, count=count)
        for name, at in (
            ("last_order_at", health.last_order_at),
            ("token_expires_at", health.token_expires_at),
            ("last_poll_at", health.last_poll_at),
            ("poll_cursor", health.poll_cursor),
        ):
            if at is not None:
                getattr(entry, name).CopyFrom(timestamp(at))
    return reply
