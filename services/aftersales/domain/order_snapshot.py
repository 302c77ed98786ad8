"""What after-sales knows of an order when a ticket is opened: who bought it, how it was paid, where
it is, and every line's money in the buckets orders fixed at acceptance.

Orders split every order-level discount (promotion, coupon, points) and the shipping over the lines
by the largest-remainder rule when it accepted the order; after-sales reads those buckets as they
were and never spreads a discount again. A snapshot is checked when it is built: a bad one names
its field under `order.` (e.g. `order.lines[2].coupon_minor`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from services.kit.errors import InvalidArgument

# order statuses as orders names them (services/orders/domain/lifecycle.py), read as plain strings
PENDING_PAYMENT = "PENDING_PAYMENT"
CANCELLED = "CANCELLED"
REFUNDED = "REFUNDED"
PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
# the parcel has left the warehouse: a return is possible
SHIPPED_STATUSES = frozenset({"SHIPPED", "DELIVERED", "COMPLETED", PARTIALLY_REFUNDED})
UNPAID_STATUSES = frozenset({PENDING_PAYMENT})

BUCKETS = ("goods_minor", "promotion_minor", "coupon_minor", "points_minor", "shipping_minor")


@dataclass(frozen=True)
class Buckets:
    """Money in minor units of the order's currency, one figure per bucket orders keeps per line.

    `goods_minor` is the line's goods amount (quantity × unit price less the channel's own item
    discount); promotion, coupon and points are its shares of the order-level discounts; shipping
    its share of the order's shipping.
    """

    goods_minor: int = 0
    promotion_minor: int = 0
    coupon_minor: int = 0
    points_minor: int = 0
    shipping_minor: int = 0

    @property
    def discount_minor(self) -> int:
        return self.promotion_minor + self.coupon_minor + self.points_minor

    @property
    def cash_minor(self) -> int:
        """What was paid in money for the goods: goods less every discount (points are not money)."""
        return self.goods_minor - self.discount_minor

    @property
    def paid_minor(self) -> int:
        """What the customer paid in money, its shipping included: goods − discounts + shipping."""
        return self.cash_minor + self.shipping_minor

    def plus(self, other: Buckets) -> Buckets:
        return Buckets(*(getattr(self, name) + getattr(other, name) for name in BUCKETS))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in BUCKETS}


def check_buckets(amounts: Buckets, where: str) -> None:
    """No bucket negative, the discounts no more than the goods."""
    for f in fields(amounts):
        value = getattr(amounts, f.name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{where}.{f.name}", "must be a non-negative integer (minor units)")
    if amounts.discount_minor > amounts.goods_minor:
        raise InvalidArgument(
            f"{where}.goods_minor",
            f"the discounts ({amounts.discount_minor}) exceed the goods ({amounts.goods_minor})",
        )


@dataclass(frozen=True)
class SnapshotLine:
    """One line of the order; `index` (its 0-based position in the order) is its identity."""

    index: int
    sku: str
    title: str
    quantity: int
    amounts: Buckets
    # a made-to-order item (engraving, tailoring): None when orders does not know
    customised: bool | None = None


@dataclass(frozen=True)
class Payment:
    """How the order was paid: the refund goes back the same way."""

    # "wechat_pay", "alipay", … (orders' provider names)
    provider: str
    # the provider's id of the payment (WeChat transaction_id, Alipay trade_no)
    transaction_id: str
    # our order number at the provider (WeChat/Alipay out_trade_no)
    merchant_order_no: str
    amount_minor: int


@dataclass(frozen=True)
class OrderSnapshot:
    order_id: str
    customer_id: str
    channel: str
    status: str
    currency: str
    paid_at: datetime | None
    lines: tuple[SnapshotLine, ...]
    # None: paid on a marketplace that collects the money itself
    payment: Payment | None = None
    shipped_at: datetime | None = None
    # signed for by the customer
    delivered_at: datetime | None = None

    def __post_init__(self) -> None:
        check_snapshot(self)

    @property
    def paid(self) -> bool:
        return self.paid_at is not None and self.status not in UNPAID_STATUSES

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def shipped(self) -> bool:
        """Left the warehouse: by status, or by a shipping or delivery time (an order on hold or in
        exception keeps its times)."""
        return self.status in SHIPPED_STATUSES or self.shipped_at is not None or self.delivered_at is not None

    @property
    def totals(self) -> Buckets:
        total = Buckets()
        for line in self.lines:
            total = total.plus(line.amounts)
        return total

    @property
    def order_total_minor(self) -> int:
        """The order's amount before its order-level discounts: goods plus shipping."""
        totals = self.totals
        return totals.goods_minor + totals.shipping_minor

    @property
    def paid_minor(self) -> int:
        """What the customer actually paid in money: Σ over the lines of goods − discounts + shipping."""
        return self.totals.paid_minor

    def line(self, index: int) -> SnapshotLine | None:
        return self.lines[index] if 0 <= index < len(self.lines) else None


def check_snapshot(order: OrderSnapshot, where: str = "order") -> None:
    for name in ("order_id", "customer_id", "channel", "status", "currency"):
        if not str(getattr(order, name)).strip():
            raise InvalidArgument(f"{where}.{name}", "is required")
    for name in ("paid_at", "shipped_at", "delivered_at"):
        moment = getattr(order, name)
        if moment is not None and moment.tzinfo is None:
            raise InvalidArgument(f"{where}.{name}", "must carry a time zone")
    if not order.lines:
        raise InvalidArgument(f"{where}.lines", "an order has at least one line")
    for position, line in enumerate(order.lines):
        at = f"{where}.lines[{position}]"
        if line.index != position:
            raise InvalidArgument(f"{at}.index", f"must be {position}: lines are listed in the order's order")
        if not line.sku.strip():
            raise InvalidArgument(f"{at}.sku", "is required")
        if not isinstance(line.quantity, int) or line.quantity < 1:
            raise InvalidArgument(f"{at}.quantity", "must be at least 1")
        check_buckets(line.amounts, f"{at}.amounts")
    if order.payment is not None:
        if not order.payment.provider.strip():
            raise InvalidArgument(f"{where}.payment.provider", "is required")
        if order.payment.amount_minor < 0:
            raise InvalidArgument(f"{where}.payment.amount_minor", "must not be negative")
