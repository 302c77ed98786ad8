"""Orders as after-sales sees them, with buckets split by orders' own `split_order` (tests may import
orders' domain; the service may not)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from services.aftersales.domain.commands import OpenTicket
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.order_snapshot import Buckets, OrderSnapshot, Payment, SnapshotLine
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import Ticket, open_ticket
from services.aftersales.domain.vouchers import RefundLine
from services.orders.domain.money import split_order

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PAID_AT = T0 - timedelta(days=5)
DELIVERED_AT = T0 - timedelta(days=2)

# the worked example of docs/aftersales.md: 2 × 129.00, 1 × 59.90, 3 × 19.90; 30.00 promotion,
# 15.00 coupon, 5.00 points, 8.00 shipping
EXAMPLE_UNITS = ((12900, 2), (5990, 1), (1990, 3))
EXAMPLE_DISCOUNTS = (3000, 1500, 500, 800)


def order(
    units: Sequence[tuple[int, int]] = EXAMPLE_UNITS,
    promotion: int = EXAMPLE_DISCOUNTS[0],
    coupon: int = EXAMPLE_DISCOUNTS[1],
    points: int = EXAMPLE_DISCOUNTS[2],
    shipping: int = EXAMPLE_DISCOUNTS[3],
    *,
    order_id: str = "o-1",
    status: str = "DELIVERED",
    paid_at: datetime | None = PAID_AT,
    delivered_at: datetime | None = DELIVERED_AT,
    customised: Sequence[bool | None] | None = None,
    channel: str = "OWN_SHOP",
) -> OrderSnapshot:
    """An order of (unit price, quantity) lines with its buckets as orders splits them."""
    goods = [price * quantity for price, quantity in units]
    shares = split_order(goods, promotion, coupon, points, shipping)
    lines = tuple(
        SnapshotLine(
            index,
            f"SKU-{index}",
            f"item {index}",
            quantity,
            Buckets(
                share.goods_minor,
                share.promotion_minor,
                share.coupon_minor,
                share.points_minor,
                share.shipping_minor,
            ),
            customised[index] if customised is not None else False,
        )
        for index, ((_, quantity), share) in enumerate(zip(units, shares, strict=True))
    )
    paid = sum(share.paid_minor for share in shares)
    return OrderSnapshot(
        order_id=order_id,
        customer_id="c-1",
        channel=channel,
        status=status,
        currency="CNY",
        paid_at=paid_at,
        lines=lines,
        payment=Payment("wechat_pay", "4200000001202603010000000001", f"OMS{order_id}", paid),
        delivered_at=delivered_at,
    )


def command(
    snapshot: OrderSnapshot | None = None,
    lines: Sequence[tuple[int, int]] = ((0, 1),),
    *,
    ticket_id: str = "t-1",
    kind: TicketKind = TicketKind.RETURN_AND_REFUND,
    reason: Reason = Reason.SIZE_FIT,
    note: str = "",
    damage_reported: bool = False,
) -> OpenTicket:
    return OpenTicket(
        ticket_id,
        snapshot if snapshot is not None else order(),
        kind,
        reason,
        tuple(RefundLine(index, quantity) for index, quantity in lines),
        note,
        damage_reported,
        "c-1",
    )


def ticket(
    snapshot: OrderSnapshot | None = None,
    lines: Sequence[tuple[int, int]] = ((0, 1),),
    *,
    others: Sequence[Ticket] = (),
    at: datetime = T0,
    **kwargs: object,
) -> Ticket:
    return open_ticket(command(snapshot, lines, **kwargs), at, others=others)  # type: ignore[arg-type]
