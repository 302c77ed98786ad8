"""Shopee (cross-border): an order of v2.order.get_order_detail, amounts as floats in its currency.

The recipient address carries a large nested `address_breakdown` (the structure that grew a
single push to 2.1 MB); only the flat street-level fields are read from it.
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
    currency_exponent,
    lenient_ref,
    line,
    settle,
    to_reference,
    unix_time,
)
from services.orders.domain.model import Address, Channel, Discount, DiscountKind, IngestOrder, OrderLine

CHANNEL = Channel.SHOPEE

STATUSES = {
    "UNPAID": Meaning.UNPAID,
    "READY_TO_SHIP": Meaning.PAID,
    "PROCESSED": Meaning.PAID,
    "RETRY_SHIP": Meaning.PAID,
    "SHIPPED": Meaning.PAID,
    "TO_CONFIRM_RECEIVE": Meaning.PAID,
    "COMPLETED": Meaning.PAID,
    "TO_RETURN": Meaning.PAID,
    # the buyer asked to cancel; until Shopee says CANCELLED the order stands
    "IN_CANCEL": Meaning.PAID,
    # Brazil: paid, waiting for the seller's invoice before shipping
    "INVOICE_PENDING": Meaning.PAID,
    "CANCELLED": Meaning.CANCELLED,
}

_DISCOUNTS = (
    ("voucher_from_seller", DiscountKind.COUPON),
    ("voucher_from_shopee", DiscountKind.COUPON),
    ("coins", DiscountKind.POINTS),
)


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "order_sn")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    order = Node.root(payload)
    order_sn = order.reference("order_sn")
    currency = order.text("currency", max_length=3)
    currency_exponent(currency, order.where("currency"))
    code, meaning = order.status("order_status", STATUSES)
    paid_at, cancelled = settle(
        meaning, order.time_or_none("pay_time", unix_time), order.where("pay_time"), order.flag("cod")
    )
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order_sn,
        buyer_id=order.text("buyer_user_id", default="", max_length=MAX_BUYER_ID),
        currency=currency,
        lines=tuple(_line(item, currency) for item in order.nodes("item_list")),
        shipping_address=_address(order.node("recipient_address"), order),
        shipping_fee_minor=order.money("estimated_shipping_fee", currency, default=0),
        placed_at=order.time("create_time", unix_time),
        discounts=tuple(
            Discount(kind, amount, key)
            for key, kind in _DISCOUNTS
            if (amount := order.money(key, currency, default=0))
        ),
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=order.time("update_time", unix_time),
        buyer_note=order.text("message_to_seller", default=""),
    )


def _line(item: Node, currency: str) -> OrderLine:
    quantity = item.quantity("model_quantity_purchased")
    original = item.money("model_original_price", currency)
    discounted = item.money("model_discounted_price", currency, default=original)
    if discounted > original:
        raise MalformedPayload(item.where("model_discounted_price"), "exceeds model_original_price")
    return line(
        _sku(item),
        item.text("item_name", max_length=MAX_TITLE),
        quantity,
        original,
        (original - discounted) * quantity,
        item.path,
    )


def _sku(item: Node) -> str:
    # Sellers often leave the SKU codes empty; item and model ids together still name the variant.
    for key in ("model_sku", "item_sku"):
        if item.has(key):
            return item.reference(key)
    item_id = item.text("item_id")
    model_id = item.text("model_id", default="0")
    return to_reference(f"{item_id}:{model_id}" if model_id != "0" else item_id, item.where("item_id"))


def _address(recipient: Node, order: Node) -> Address:
    # City-states (SG) send neither state nor city: fall back to the next level that is there.
    region = recipient.text("region", default="") or order.filled("region")
    state = recipient.text("state", default="")
    city = recipient.text("city", default="")
    district = recipient.text("district", default="")
    town = recipient.text("town", default="")
    if len(region) != 2 or not region.isalpha() or not region.isupper():
        raise MalformedPayload(recipient.where("region"), "must be a country code such as SG")
    return Address(
        recipient_name=recipient.filled("name"),
        phone=recipient.filled("phone"),
        country_code=region,
        province=state or city or region,
        city=city or district or town or state or region,
        district=district or town,
        detail=recipient.filled("full_address"),
        postal_code=recipient.text("zipcode", default=""),
    )
