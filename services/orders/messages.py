"""Proto ↔ domain for the orders service's events, in one place."""

from __future__ import annotations

from google.protobuf.message import Message

from oms.alerts.v1 import events_pb2 as alert_events
from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2
from services.kit.timestamps import timestamp
from services.orders.domain import model
from services.orders.domain.lifecycle import OrderStatus

SUBJECTS = (
    "orders.created",
    "orders.updated",
    "orders.paid",
    "orders.allocated",
    "orders.status_changed",
    "orders.cancelled",
    "orders.held",
    "orders.released",
    "orders.exception",
    "alerts.raised",
)
SEVERITIES = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def status_value(status: OrderStatus | None) -> str:
    return f"ORDER_STATUS_{status.value}" if status else "ORDER_STATUS_UNSPECIFIED"


def event_messages(order: model.Order) -> list[tuple[str, Message]]:
    """The integration events for the domain events recorded on the order, in order."""
    out: list[tuple[str, Message]] = []
    for event in order.events:
        message = _message(order, event)
        if message is not None:
            out.append(message)
    return out


def alert(
    kind: str, severity: str, order_id: str, text: str, customer_id: str = "", channel: str = ""
) -> alert_events.AlertRaised:
    return alert_events.AlertRaised(
        kind=kind,
        severity=SEVERITIES.get(severity, 2),  # type: ignore[arg-type]
        source="orders",
        order_id=order_id,
        message=text[:2000],
        dedupe_key=f"{kind}:{order_id}",
        customer_id=customer_id,
        channel=channel,
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
        case model.AlertRaised(kind=kind, severity=severity, message=text):
            return "alerts.raised", alert(kind, severity, oid, text, order.buyer_id, order.channel.value)
    return None
