"""JD (Jingdong POP shops): an order as jingdong.pop.order.get / .search returns it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.orders.domain.channels.base import (
    CHINA,
    MAX_BUYER_ID,
    MAX_TITLE,
    MalformedPayload,
    Meaning,
    Node,
    first_reference,
    lenient_ref,
    line,
    local_time,
    settle,
)
from services.orders.domain.model import Address, Channel, Discount, DiscountKind, IngestOrder, OrderLine

CHANNEL = Channel.JD
CURRENCY = "CNY"

# JD hands an online-paid order to the shop only once it is paid; the unpaid orders a shop
# sees are cash on delivery (payType "1-货到付款").
STATUSES = {
    "WAIT_SELLER_STOCK_OUT": Meaning.PAID,
    "WAIT_SELLER_DELIVERY": Meaning.PAID,
    "SEND_TO_DISTRIBUTION_CENER": Meaning.PAID,
    "DISTRIBUTION_CENTER_RECEIVED": Meaning.PAID,
    "WAIT_GOODS_RECEIVE_CONFIRM": Meaning.PAID,
    "RECEIPTS_CONFIRM": Meaning.PAID,
    "FINISHED_L": Meaning.PAID,
    # the buyer asked to cancel and JD is deciding: still an order until TRADE_CANCELED arrives
    "LOCKED": Meaning.PAID,
    "PAUSE": Meaning.PAID,
    "POP_ORDER_PAUSE": Meaning.PAID,
    "TRADE_CANCELED": Meaning.CANCELLED,
}

# couponType is "<code>-<label>"; the code decides the kind.
_POINTS_TYPES = frozenset({"39"})  # 京豆 (JD beans)
_COUPON_TYPES = frozenset({"34", "41"})  # 手机红包, 京东券
# 52 is a JD gift card: a way of paying, not a price reduction, so it is no discount.
_TENDER_TYPES = frozenset({"52"})

_TIME = local_time(CHINA)


def order_ref(payload: object) -> str:
    return lenient_ref(payload, "orderId")


def parse(payload: Mapping[str, Any]) -> IngestOrder:
    order = Node.root(payload)
    code, meaning = order.status("orderState", STATUSES)
    cash_on_delivery = order.text("payType", default="").startswith("1-")
    paid_at, cancelled = settle(
        meaning,
        order.time_or_none("paymentConfirmTime", _TIME),
        order.where("paymentConfirmTime"),
        cash_on_delivery,
    )
    items = order.nodes("itemInfoList")
    item_discounts, discounts = _coupons(order, items)
    return IngestOrder(
        channel=CHANNEL,
        channel_order_id=order.reference("orderId"),
        buyer_id=order.text("open_id_buyer", default="", max_length=MAX_BUYER_ID)
        or order.text("pin", default="", max_length=MAX_BUYER_ID),
        currency=CURRENCY,
        lines=tuple(_line(item, item_discounts.get(index, 0)) for index, item in enumerate(items)),
        shipping_address=_address(order.node("consigneeInfo")),
        shipping_fee_minor=order.money("freightPrice", CURRENCY, default=0),
        placed_at=order.time("orderStartTime", _TIME),
        discounts=discounts,
        channel_status=code,
        paid_at=paid_at,
        cancelled=cancelled,
        channel_modified_at=order.time("modified", _TIME),
        buyer_note=order.text("orderRemark", default=""),
    )


def _line(item: Node, discount_minor: int) -> OrderLine:
    return line(
        first_reference(item, "outerSkuId", "skuId"),
        item.text("skuName", max_length=MAX_TITLE),
        item.quantity("itemTotal"),
        item.money("jdPrice", CURRENCY),
        discount_minor,
        item.path,
    )


def _coupons(order: Node, items: list[Node]) -> tuple[dict[int, int], tuple[Discount, ...]]:
    """Split couponDetailList into item-level amounts (by item index) and order-level discounts.

    An entry with a skuId belongs to that item; one without is order-level. sellerDiscount is the
    seller's share of the same amounts, so it is read only when JD sent no breakdown.
    """
    line_of_sku = {item.text("skuId"): index for index, item in enumerate(items)}
    per_item: dict[int, int] = {}
    discounts: list[Discount] = []
    coupons = order.nodes("couponDetailList", required=False)
    for coupon in coupons:
        kind_code = coupon.text("couponType").split("-", 1)[0]
        amount = coupon.money("couponPrice", CURRENCY)
        if kind_code in _TENDER_TYPES or not amount:
            continue
        if coupon.has("skuId"):
            sku = coupon.text("skuId")
            if sku not in line_of_sku:
                raise MalformedPayload(coupon.where("skuId"), f"names no item of the order: {sku[:64]!r}")
            per_item[line_of_sku[sku]] = per_item.get(line_of_sku[sku], 0) + amount
            continue
        kind = (
            DiscountKind.POINTS
            if kind_code in _POINTS_TYPES
            else DiscountKind.COUPON
            if kind_code in _COUPON_TYPES
            else DiscountKind.PROMOTION
        )
        discounts.append(Discount(kind, amount, coupon.text("couponType")[:128]))
    if not coupons:
        seller = order.money("sellerDiscount", CURRENCY, default=0)
        if seller:
            discounts.append(Discount(DiscountKind.PROMOTION, seller, "sellerDiscount"))
    return per_item, tuple(discounts)


def _address(consignee: Node) -> Address:
    return Address(
        recipient_name=consignee.filled("fullname"),
        phone=consignee.text("mobile", default="") or consignee.filled("telephone"),
        country_code="CN",
        province=consignee.filled("province"),
        city=consignee.filled("city"),
        district=consignee.text("county", default=""),
        detail=consignee.filled("fullAddress"),
    )
