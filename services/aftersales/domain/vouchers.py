"""Refunds to the cent, from the buckets orders fixed for each line, kept as a voucher.

The rule (`RULE_UNITS`): a line of Q units carries its goods, promotion, coupon, points and shipping
buckets. Each bucket is split over the Q units by the rule orders used to split the order over its
lines (largest remainder, ties to the earlier unit, every part sums exactly to the whole):

- goods evenly over the units;
- promotion, then coupon, then points, each weighted by what is still left to pay on each unit,
  so no unit's discounts exceed its goods and no refund of whole units is ever negative;
- shipping weighted by the units' goods.

Refunds take the units in order: the first refund of a line takes unit 0's shares onward, a later
one the next units' (it starts after the units earlier refunds took, an input). Where a bucket does
not divide evenly the earlier units carry the extra minor unit, so the first refunds take the larger
shares. Whatever the sequence of partial refunds, refunding all Q units returns each bucket exactly.

A refund's money is goods − promotion − coupon − points for those units; points go back as points
(a separate figure, never cash); the shipping share of those units is refunded only when the merchant
bears the reason (`SHIPPING_REFUNDED`), never when it was the customer's choice (`SHIPPING_KEPT`).
Shipping is refunded per unit, by the reason of the ticket that refunds the unit: a last
merchant-fault refund does not sweep up the shipping of units earlier returned by choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.aftersales.domain.errors import Refused
from services.aftersales.domain.order_snapshot import BUCKETS, Buckets, OrderSnapshot
from services.aftersales.domain.reasons import Reason, Responsibility
from services.kit.errors import InvalidArgument

RULE_UNITS = "units.largest_remainder.v1"
SHIPPING_REFUNDED = "shipping.merchant_bears.refunded"
SHIPPING_KEPT = "shipping.customer_choice.kept"


@dataclass(frozen=True)
class RefundLine:
    """Refund `quantity` units of the order's line `line_index`."""

    line_index: int
    quantity: int


@dataclass(frozen=True)
class LineRefunded:
    """What earlier refunds took from one line: how many units, and how much of each bucket."""

    units: int = 0
    amounts: Buckets = field(default_factory=Buckets)


# line index → what has been refunded on it (refunds in flight included)
Ledger = Mapping[int, LineRefunded]


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`: each part floored, the units left over one each to
    the largest remainders, ties to the earlier part; all weights zero: an even split.

    The same rule as orders' `money.apportion` (services do not import each other; a test checks the
    two agree)."""
    if total < 0:
        raise ValueError("total must not be negative")
    if not weights:
        if total:
            raise ValueError("cannot split a non-zero total over nothing")
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    parts = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    left = total - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


def _capped(amount: int, room: Sequence[int]) -> list[int]:
    """Apportion by `room` (what is left to pay on each part): no part exceeds its room."""
    if amount == 0:
        return [0] * len(room)
    if sum(room) == amount:
        return list(room)
    return apportion(amount, room)


def unit_shares(amounts: Buckets, quantity: int) -> list[Buckets]:
    """Each unit's share of a line's buckets (`RULE_UNITS`); they sum exactly to `amounts`."""
    if quantity < 1:
        raise ValueError("a line has at least one unit")
    goods = apportion(amounts.goods_minor, [1] * quantity)
    left = list(goods)
    discounts: list[list[int]] = []
    for amount in (amounts.promotion_minor, amounts.coupon_minor, amounts.points_minor):
        parts = _capped(amount, left)
        left = [rest - part for rest, part in zip(left, parts, strict=True)]
        discounts.append(parts)
    shipping = apportion(amounts.shipping_minor, goods)
    return [
        Buckets(goods[k], discounts[0][k], discounts[1][k], discounts[2][k], shipping[k])
        for k in range(quantity)
    ]


def units_share(amounts: Buckets, quantity: int, first: int, count: int) -> Buckets:
    """The shares of units `first` … `first + count − 1` of a line of `quantity` units."""
    if first < 0 or count < 0 or first + count > quantity:
        raise ValueError("units outside the line")
    total = Buckets()
    for share in unit_shares(amounts, quantity)[first : first + count]:
        total = total.plus(share)
    return total


@dataclass(frozen=True)
class VoucherLine:
    """One line of a refund: which units, and this refund's amount of every bucket."""

    line_index: int
    sku: str
    quantity: int
    # units first_unit … first_unit + quantity − 1 of the line's of_units (0-based)
    first_unit: int
    of_units: int
    # shipping_minor is 0 when the shipping is kept (see rule)
    amounts: Buckets
    rule: str

    @property
    def cash_minor(self) -> int:
        """Money back for this line: goods − promotion − coupon − points, plus shipping if refunded."""
        return self.amounts.paid_minor

    @property
    def points_minor(self) -> int:
        """Points back, in minor units of their money value (not cash)."""
        return self.amounts.points_minor


@dataclass(frozen=True)
class Voucher:
    """The breakdown of one refund as finance reads it; the lines sum exactly to the totals."""

    order_id: str
    currency: str
    reason: Reason
    responsibility: Responsibility
    lines: tuple[VoucherLine, ...]
    totals: Buckets
    # money back through the payment provider: Σ goods − discounts + shipping refunded
    cash_minor: int
    # back to the customer's points account (money value), never paid as cash
    points_minor: int
    shipping_minor: int
    rule: str

    @property
    def imbalance_minor(self) -> int:
        """How many minor units the lines and the totals disagree by, over every bucket and figure:
        0 for every voucher this module builds (what the `refund_cents_off` benchmark adds up)."""
        summed = Buckets()
        for line in self.lines:
            summed = summed.plus(line.amounts)
        off = sum(abs(getattr(summed, name) - getattr(self.totals, name)) for name in BUCKETS)
        off += abs(sum(line.cash_minor for line in self.lines) - self.cash_minor)
        off += abs(self.totals.paid_minor - self.cash_minor)
        off += abs(sum(line.points_minor for line in self.lines) - self.points_minor)
        off += abs(self.totals.shipping_minor - self.shipping_minor)
        return off

    def check(self) -> None:
        """Raise if the voucher does not sum (e.g. one read back from storage)."""
        if self.imbalance_minor:
            raise ValueError(f"voucher for {self.order_id} is off by {self.imbalance_minor} minor units")


def _voucher(
    order: OrderSnapshot,
    reason: Reason,
    responsibility: Responsibility,
    lines: Sequence[VoucherLine],
    shipping_rule: str,
) -> Voucher:
    totals = Buckets()
    for line in lines:
        totals = totals.plus(line.amounts)
    return Voucher(
        order.order_id,
        order.currency,
        reason,
        responsibility,
        tuple(lines),
        totals,
        totals.paid_minor,
        totals.points_minor,
        totals.shipping_minor,
        f"{RULE_UNITS}; {shipping_rule}",
    )


def check_refund_lines(order: OrderSnapshot, lines: Sequence[RefundLine], where: str = "lines") -> None:
    """Lines that exist in the order, each once, each at least one unit (InvalidArgument otherwise)."""
    if not lines:
        raise InvalidArgument(where, "name at least one line of the order")
    seen: set[int] = set()
    for position, wanted in enumerate(lines):
        at = f"{where}[{position}]"
        if order.line(wanted.line_index) is None:
            raise InvalidArgument(
                f"{at}.line_index",
                f"order {order.order_id} has no line {wanted.line_index} (it has {len(order.lines)})",
            )
        if wanted.line_index in seen:
            raise InvalidArgument(f"{at}.line_index", f"line {wanted.line_index} is named twice")
        seen.add(wanted.line_index)
        if not isinstance(wanted.quantity, int) or wanted.quantity < 1:
            raise InvalidArgument(f"{at}.quantity", "must be at least 1")


def units_left(order: OrderSnapshot, line_index: int, refunded: Ledger, claimed: Mapping[int, int]) -> int:
    """Units of a line neither refunded (refunds in flight included) nor claimed by other open tickets."""
    line = order.lines[line_index]
    return line.quantity - refunded.get(line_index, LineRefunded()).units - claimed.get(line_index, 0)


def calculate_voucher(
    order: OrderSnapshot,
    lines: Sequence[RefundLine],
    reason: Reason,
    responsibility: Responsibility,
    *,
    refunded: Ledger | None = None,
    claimed: Mapping[int, int] | None = None,
    where: str = "lines",
) -> Voucher:
    """The voucher of refunding `lines` after what `refunded` already took (and with `claimed`
    units held by other open tickets not yet refunded).

    More units than are left on a line → Refused naming `lines[i].quantity`; a refund that would take
    a bucket past what was paid (a ledger that disagrees with the split) → Refused naming the bucket.
    """
    refunded = refunded or {}
    claimed = claimed or {}
    check_refund_lines(order, lines, where)
    refunds_shipping = responsibility is Responsibility.MERCHANT
    shipping_rule = SHIPPING_REFUNDED if refunds_shipping else SHIPPING_KEPT
    out: list[VoucherLine] = []
    for position, wanted in enumerate(lines):
        at = f"{where}[{position}]"
        line = order.lines[wanted.line_index]
        before = refunded.get(wanted.line_index, LineRefunded())
        left = units_left(order, wanted.line_index, refunded, claimed)
        if wanted.quantity > left:
            raise Refused(
                f"{at}.quantity",
                f"{wanted.quantity} units asked, {max(left, 0)} of line {wanted.line_index}'s "
                f"{line.quantity} are left to refund",
            )
        share = units_share(line.amounts, line.quantity, before.units, wanted.quantity)
        if not refunds_shipping:
            share = Buckets(share.goods_minor, share.promotion_minor, share.coupon_minor, share.points_minor)
        after = before.amounts.plus(share)
        for name in BUCKETS:
            if getattr(after, name) > getattr(line.amounts, name):
                raise Refused(
                    f"{at}.{name}",
                    f"line {wanted.line_index} would have {getattr(after, name)} refunded of "
                    f"{getattr(line.amounts, name)} paid",
                )
        out.append(
            VoucherLine(
                wanted.line_index,
                line.sku,
                wanted.quantity,
                before.units,
                line.quantity,
                share,
                f"{RULE_UNITS}: {_units(before.units, wanted.quantity)} of {line.quantity}; {shipping_rule}",
            )
        )
    return _voucher(order, reason, responsibility, out, shipping_rule)


def _units(first: int, count: int) -> str:
    """Units as people count them, from 1: "unit 2", "units 2–3"."""
    return f"unit {first + 1}" if count == 1 else f"units {first + 1}–{first + count}"


def ledger_after(refunded: Ledger, voucher: Voucher) -> dict[int, LineRefunded]:
    """The ledger once `voucher` is refunded too."""
    ledger = dict(refunded)
    for line in voucher.lines:
        before = ledger.get(line.line_index, LineRefunded())
        ledger[line.line_index] = LineRefunded(
            before.units + line.quantity, before.amounts.plus(line.amounts)
        )
    return ledger


def ledger_of(vouchers: Sequence[Voucher]) -> dict[int, LineRefunded]:
    ledger: dict[int, LineRefunded] = {}
    for voucher in vouchers:
        ledger = ledger_after(ledger, voucher)
    return ledger
