"""The row mappers: an aggregate onto its table's columns and back, each column named once here.

Personal data is sealed here, on the way into the database, and opened on the way out: the rest of
the service only ever sees the plain `Address`, and the tables only ever hold ciphertext.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from services.kit.sealing import KeyRing
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.masking import normalise_phone
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    HoldCause,
    Order,
    OrderLine,
    Priority,
    StatusChanged,
)
from services.orders.domain.money import LineShare
from services.orders.domain.orchestration import Stored
from services.orders.domain.payments import (
    PaymentNotification,
    PaymentRecord,
    PaymentState,
    PaymentStatus,
)
from services.orders.domain.refunds import Refunds
from services.orders.domain.shipping import PlannedParcel, Shipment, ShippingPlan, Stage
from services.orders.domain.sla import Level, SlaState, Terms
from services.orders.domain.sla import Stage as SlaStage
from services.orders.domain.timeline import Entry

PII_FIELDS = ("recipient_name", "phone", "detail", "postal_code")
_PLAIN_ADDRESS_FIELDS = ("country_code", "province", "city", "district")
_BUCKETS = ("goods", "promotion", "coupon", "points", "shipping")


def dumps(value: object) -> str:
    """Compact JSON for the statements' documents; datetimes as RFC 3339. orjson, because the
    standard encoder was the largest single cost of a batch ingest (about a fifth of its CPU)."""
    return orjson.dumps(value).decode()


# ---- orders ------------------------------------------------------------------------------------


def order_row(stored: Stored, keys: KeyRing, kept_seal: tuple[str, str] | None = None) -> dict[str, Any]:
    """Every column of the order's row. Which of them a statement writes is the table's to say.
    `kept_seal`: the sealed personal data and phone hash the row holds for this very address (read
    with it), written back as they are instead of sealed again."""
    order = stored.order
    if kept_seal is not None:
        plain = plain_address(order.shipping_address)
        sealed, phone_hash = kept_seal
    else:
        plain, sealed, phone_hash = seal_address(keys, order.order_id, order.shipping_address)
    status_changed = any(isinstance(event, StatusChanged) for event in order.events)
    return {
        "order_id": order.order_id,
        "channel": order.channel.value,
        "channel_order_id": order.channel_order_id,
        "buyer_id": order.buyer_id,
        "currency": order.currency,
        "status": order.status.value,
        "shipping_fee_minor": order.shipping_fee_minor,
        "total_minor": order.payable_minor,
        "shipping_address": plain,
        "placed_at": order.placed_at,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "discounts": [
            {"kind": item.kind.value, "amount_minor": item.amount_minor, "reference": item.reference}
            for item in order.discounts
        ],
        "channel_status": order.channel_status,
        "channel_modified_at": order.channel_modified_at,
        "paid_at": order.paid_at,
        "buyer_note": order.buyer_note,
        "resume_status": order.resume_status.value if order.resume_status else None,
        "status_reason": order.status_reason,
        "status_changed_at": (
            order.updated_at
            if status_changed or stored.status_changed_at is None
            else stored.status_changed_at
        ),
        "warehouses": list(order.warehouses),
        "waybill_no": order.waybill_no,
        "scanned_out_at": order.scanned_out_at,
        "version": order.version,
        "pii_sealed": sealed,
        "phone_hash": phone_hash,
        "stock_state": stored.stock_state,
        "step": stored.step,
        "step_due_at": stored.step_due_at,
        "step_attempts": stored.step_attempts,
        "step_error": stored.step_error[:2000],
        "step_dead": stored.step_dead,
        "step_failed_at": stored.step_failed_at,
        "step_paused_since": stored.step_paused_since,
        "step_pauses": stored.step_pauses,
        "step_waiting_for": stored.step_waiting_for,
        "traceparent": stored.traceparent[:64],
        "step_traceparent": stored.step_traceparent[:64],
        **sla_columns(stored.sla),
        "priority": order.priority.value,
        "refused_decision_id": stored.refused_decision_id,
        "hold_cause": order.hold_cause.value,
        "shipping": shipping_document(order),
        "refunds": refunds_document(order.refunds),
    }


def stored_from_row(row: Any, keys: KeyRing) -> Stored:
    """An order row (with its `lines` as one JSON array) as the aggregate and its bookkeeping."""
    lines = row["lines"]
    order = Order(
        order_id=row["order_id"],
        channel=Channel(row["channel"]),
        channel_order_id=row["channel_order_id"],
        buyer_id=row["buyer_id"],
        currency=row["currency"],
        lines=tuple(
            OrderLine(
                line["sku"], line["title"], line["quantity"], line["unit_price_minor"], line["discount_minor"]
            )
            for line in lines
        ),
        shares=tuple(LineShare(*(line[f"{bucket}_minor"] for bucket in _BUCKETS)) for line in lines),
        discounts=tuple(
            Discount(DiscountKind(item["kind"]), item["amount_minor"], item.get("reference", ""))
            for item in row["discounts"]
        ),
        shipping_address=open_address(keys, row["order_id"], row["shipping_address"], row["pii_sealed"]),
        shipping_fee_minor=row["shipping_fee_minor"],
        placed_at=row["placed_at"],
        status=OrderStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        channel_status=row["channel_status"],
        channel_modified_at=row["channel_modified_at"],
        paid_at=row["paid_at"],
        buyer_note=row["buyer_note"],
        resume_status=OrderStatus(row["resume_status"]) if row["resume_status"] else None,
        status_reason=row["status_reason"],
        warehouses=tuple(row["warehouses"]),
        waybill_no=row["waybill_no"],
        scanned_out_at=row["scanned_out_at"],
        version=row["version"],
        priority=Priority(row["priority"]),
        hold_cause=HoldCause(row["hold_cause"]),
        shipping_plan=plan_from(row["shipping"]),
        shipments=shipments_from(row["shipping"]),
        refunds=refunds_from(row["refunds"]),
    )
    return Stored(
        order=order,
        stock_state=row["stock_state"],
        step=None if row["step_dead"] else row["step"],
        step_due_at=row["step_due_at"],
        step_attempts=row["step_attempts"],
        step_error=row["step_error"],
        step_dead=row["step_dead"],
        step_failed_at=row["step_failed_at"],
        step_pauses=row["step_pauses"],
        step_paused_since=row["step_paused_since"],
        step_waiting_for=row["step_waiting_for"],
        traceparent=row["traceparent"],
        step_traceparent=row["step_traceparent"],
        refused_decision_id=row["refused_decision_id"],
        status_changed_at=row["status_changed_at"],
        sla=sla_from_row(row),
    )


# ---- the order's parcels (one JSON document) -----------------------------------------------------


def shipping_document(order: Order) -> dict[str, Any] | None:
    """Routing's plan and logistics' shipments; `listed` and `in_warehouse` are there for the queries
    that look for orders needing a step (store.orders.unowned)."""
    plan = order.shipping_plan
    if plan is None and not order.shipments:
        return None
    return {
        "plan": None
        if plan is None
        else {
            "decision_id": plan.decision_id,
            "parcels": [
                {
                    "warehouse_id": parcel.warehouse_id,
                    "carrier": parcel.carrier,
                    "service": parcel.service,
                    "lines": [[sku, quantity] for sku, quantity in parcel.lines],
                }
                for parcel in plan.parcels
            ],
        },
        "shipments": [
            {
                "shipment_id": shipment.shipment_id,
                "warehouse_id": shipment.warehouse_id,
                "carrier": shipment.carrier,
                "stage": shipment.stage.value,
                "waybill_no": shipment.waybill_no,
                "scanned_out_at": shipment.scanned_out_at,
                "delivered_at": shipment.delivered_at,
                "listed": shipment.listed,
                "reported": sorted(shipment.reported),
            }
            for shipment in order.shipments
        ],
        "listed": order.shipments_listed,
        "in_warehouse": order.shipments_in_warehouse,
    }


def plan_from(document: Mapping[str, Any] | None) -> ShippingPlan | None:
    plan = (document or {}).get("plan")
    if not plan:
        return None
    return ShippingPlan(
        plan["decision_id"],
        tuple(
            PlannedParcel(
                parcel["warehouse_id"],
                parcel["carrier"],
                parcel["service"],
                tuple((sku, int(quantity)) for sku, quantity in parcel["lines"]),
            )
            for parcel in plan["parcels"]
        ),
    )


def shipments_from(document: Mapping[str, Any] | None) -> tuple[Shipment, ...]:
    return tuple(
        Shipment(
            shipment_id=item["shipment_id"],
            warehouse_id=item["warehouse_id"],
            carrier=item["carrier"],
            stage=Stage(item["stage"]),
            waybill_no=item["waybill_no"],
            scanned_out_at=_when(item.get("scanned_out_at")),
            delivered_at=_when(item.get("delivered_at")),
            listed=item["listed"],
            reported=frozenset(item.get("reported", ())),
        )
        for item in (document or {}).get("shipments", ())
    )


def refunds_document(refunds: Refunds) -> dict[str, Any] | None:
    if refunds == Refunds():
        return None
    return {
        "cash_minor": refunds.cash_minor,
        "points_minor": refunds.points_minor,
        "units": [list(pair) for pair in refunds.units],
        "in_progress": sorted(refunds.in_progress),
        "settled": sorted(refunds.settled),
        "noted": sorted([ticket, step] for ticket, step in refunds.noted),
    }


def refunds_from(document: Mapping[str, Any] | None) -> Refunds:
    if not document:
        return Refunds()
    return Refunds(
        cash_minor=int(document["cash_minor"]),
        points_minor=int(document["points_minor"]),
        units=tuple((int(index), int(quantity)) for index, quantity in document["units"]),
        in_progress=frozenset(document["in_progress"]),
        settled=frozenset(document["settled"]),
        noted=frozenset((ticket, step) for ticket, step in document["noted"]),
    )


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def line_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.order_id,
            "line_no": number,
            "sku": line.sku,
            "title": line.title,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price_minor,
            "discount_minor": line.discount_minor,
            "goods_minor": share.goods_minor,
            "promotion_minor": share.promotion_minor,
            "coupon_minor": share.coupon_minor,
            "points_minor": share.points_minor,
            "shipping_minor": share.shipping_minor,
            "paid_minor": share.paid_minor,
        }
        for number, (line, share) in enumerate(zip(order.lines, order.shares, strict=True))
    ]


# the line columns an order read brings along (paid_minor is derived from the buckets)
LINE_READ = (
    "sku",
    "title",
    "quantity",
    "unit_price_minor",
    "discount_minor",
    *(f"{b}_minor" for b in _BUCKETS),
)


def timeline_rows(
    order_id: str, entries: Sequence[Entry], at: datetime, trace_id: str, linked_trace_id: str = ""
) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order_id,
            "at": at,
            "kind": entry.kind,
            "actor_type": entry.actor.type.value,
            "actor_id": entry.actor.id[:128],
            "source": entry.source[:64],
            "from_status": entry.from_status.value if entry.from_status else None,
            "to_status": entry.to_status.value if entry.to_status else None,
            "detail": entry.detail,
            "trace_id": trace_id,
            "linked_trace_id": linked_trace_id if linked_trace_id != trace_id else "",
        }
        for entry in entries
    ]


# ---- personal data -----------------------------------------------------------------------------


def phone_hash(keys: KeyRing, phone: str) -> str:
    return keys.lookup_hash(normalise_phone(phone))


def plain_address(address: Address) -> dict[str, str]:
    return {name: getattr(address, name) for name in _PLAIN_ADDRESS_FIELDS}


def seal_address(keys: KeyRing, order_id: str, address: Address) -> tuple[dict[str, str], str, str]:
    private = {name: getattr(address, name) for name in PII_FIELDS}
    return plain_address(address), seal_private(keys, order_id, private), phone_hash(keys, address.phone)


def seal_private(keys: KeyRing, order_id: str, private: Mapping[str, str]) -> str:
    return keys.seal(dumps(dict(private)).encode(), order_id)


def open_address(keys: KeyRing, order_id: str, plain: dict[str, str], sealed: str | None) -> Address:
    if sealed is None:  # written before sealing existed; the re-seal job moves it
        return Address(**plain)
    private = json.loads(keys.open(sealed, order_id))
    return Address(**plain, **private)


# ---- payments ----------------------------------------------------------------------------------


def payment_row(record: PaymentRecord, next_attempt_at: datetime | None) -> dict[str, Any]:
    note = record.notification
    return {
        "payment_id": record.payment_id,
        "provider": note.provider,
        "transaction_id": note.transaction_id,
        "merchant_order_no": note.merchant_order_no,
        "order_id": record.order_id,
        "currency": note.currency,
        "amount_minor": note.amount_minor,
        "paid_at": note.paid_at,
        "status": note.status.value,
        "state": record.state.value,
        "reason": record.reason,
        "attempts": record.attempts,
        "next_attempt_at": next_attempt_at,
        "received_at": record.received_at,
        "updated_at": record.received_at,
    }


def payment_from_row(row: Any) -> PaymentRecord:
    return PaymentRecord(
        payment_id=row["payment_id"],
        notification=PaymentNotification(
            provider=row["provider"],
            transaction_id=row["transaction_id"],
            merchant_order_no=row["merchant_order_no"],
            currency=row["currency"],
            amount_minor=row["amount_minor"],
            paid_at=row["paid_at"],
            status=PaymentStatus(row["status"]),
        ),
        order_id=row["order_id"],
        state=PaymentState(row["state"]),
        reason=row["reason"],
        attempts=row["attempts"],
        received_at=row["received_at"],
    )


def sla_columns(state: SlaState) -> dict[str, Any]:
    return {
        "sla_terms": state.terms.document() if state.terms else None,
        "sla_stage": state.stage.value if state.stage else None,
        "sla_level": int(state.level),
        "sla_started_at": state.started_at,
        "sla_warn_at": state.warn_at,
        "sla_deadline": state.deadline,
        "sla_due_at": state.due_at,
        "sla_owner": state.owner,
        "sla_backup": state.backup,
        "sla_escalated_to": state.escalated_to,
    }


def sla_from_row(row: Any) -> SlaState:
    return SlaState(
        terms=Terms.from_document(row["sla_terms"]),
        stage=SlaStage(row["sla_stage"]) if row["sla_stage"] else None,
        level=Level(row["sla_level"]),
        started_at=row["sla_started_at"],
        warn_at=row["sla_warn_at"],
        deadline=row["sla_deadline"],
        due_at=row["sla_due_at"],
        owner=row["sla_owner"],
        backup=row["sla_backup"],
        escalated_to=row["sla_escalated_to"],
    )
