"""Store POS receipts: a sale rung up at a store's till, in the store's local time.

A completed receipt is paid at the counter when it closes. A carry-out sale ships nowhere; its
order carries the store's own address (the payload's `store`) so the canonical order stays
complete, and that address tells fulfilment the goods already left through the store. A
ship-to-home sale carries the buyer's delivery address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    MAX_BUYER_ID,
    MAX_TITLE,
    MalformedPayload,
    Meaning,
    Node,
    lenient_ref,
    line,
    local_time,
    parse_offset,
    settle,
    to_reference,
)
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    IngestOrder,
    OrderLine,
    Priority,
)

CHANNEL = Channel.POS

STATUSES = {
    # parked at the till (挂单), not yet tendered
    "SUSPENDED": Meaning.UNPAID,
    "COMPLETED": Meaning.PAID,
    "VOIDED": Meaning.CANCELLED,
}
FULFILMENTS = frozenset({"CARRY_OUT", "SHIP_TO_HOME"})
DISCOUNT_KINDS = {
    "PROMOTION": DiscountKind.PROMOTION,
    "COUPON": DiscountKind.COUPON,
    "POINTS": DiscountKind.POINTS,
}


def order_ref(payload: object) -> str:
    store, receipt = lenient_ref(payload, "store_id"), lenient_ref(payload, "receipt_no")
    return f"{store}:{receipt}"[:64] if store and receipt else receipt


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    receipt = Node.root(payload)
    # Receipt numbers restart per store, so the store is part of the channel order id.
    order_id = to_reference(
        f"{receipt.reference('store_id')}:{receipt.reference('receipt_no')}", receipt.where("receipt_no")
    )
    time = local_time(parse_offset(receipt.get("utc_offset"), receipt.where("utc_offset")))
    currency = receipt.text("currency", max_length=3)
    code, meaning = receipt.status("status", STATUSES)
    paid_at, cancelled = settle(meaning, receipt.time_or_none("closed_at", time), receipt.where("closed_at"))
    fulfilment = receipt.node("fulfilment")
    kind = fulfilment.text("type", max_length=32)
    if kind not in FULFILMENTS:
        raise MalformedPayload(fulfilment.where("type"), f"must be one of {', '.join(sorted(FULFILMENTS))}")
    member = receipt.node_or_none("member")
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order_id,
        buyer_id=member.text("member_id", default="", max_length=MAX_BUYER_ID) if member else "",
        currency=currency,
        lines=tuple(_line(item, currency) for item in receipt.nodes("items")),
        shipping_address=_address(
            fulfilment.node("address") if kind == "SHIP_TO_HOME" else receipt.node("store")
        ),
        shipping_fee_minor=fulfilment.money("delivery_fee", currency, default=0),
        placed_at=receipt.time("opened_at", time),
        discounts=tuple(
            _discount(discount, currency) for discount in receipt.nodes("discounts", required=False)
        ),
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=receipt.time("modified_at", time),
        buyer_note=receipt.text("note", default=""),
        # a member's receipt (a loyalty card at the till) ships as a member's order
        priority=Priority.MEMBER if member else Priority.STANDARD,
    )


def _line(item: Node, currency: str) -> OrderLine:
    # Weighed goods are rung up in whole packs on our tills; a fractional quantity is refused.
    sku = item.reference("sku") if item.has("sku") else item.reference("barcode")
    return line(
        sku,
        item.text("name", max_length=MAX_TITLE),
        item.quantity("quantity"),
        item.money("unit_price", currency),
        item.money("line_discount", currency, default=0),
        item.path,
    )


def _discount(discount: Node, currency: str) -> Discount:
    kind = discount.text("type", max_length=32)
    if kind not in DISCOUNT_KINDS:
        raise MalformedPayload(discount.where("type"), f"must be one of {', '.join(DISCOUNT_KINDS)}")
    return Discount(
        DISCOUNT_KINDS[kind], discount.money("amount", currency), discount.text("ref", default="")[:128]
    )


def _address(address: Node) -> Address:
    # A carry-out order's recipient is the store itself: its name and phone, not the shopper's.
    return Address(
        recipient_name=address.filled("name"),
        phone=address.filled("phone"),
        country_code=address.text("country_code", default="CN", max_length=2),
        province=address.filled("province"),
        city=address.filled("city"),
        district=address.text("district", default=""),
        detail=address.filled("address"),
        postal_code=address.text("postal_code", default=""),
    )
