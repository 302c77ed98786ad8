"""Splitting order-level amounts across lines, to the cent, by the largest-remainder rule.

Every part is fixed when the order is accepted and never recomputed: the after-sales refund of
a line is what the customer paid for it, read from these buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`; parts sum exactly to `total`, none negative.

    Each part is first floored; the units left over go one each to the largest remainders,
    ties to the earlier line, so the same order always splits the same way. With all weights
    zero the split is even (a promotion on free gifts still has to land somewhere).
    """
    if total < 0:
        raise ValueError("total must not be negative")
    if not weights:
        if total:
            raise ValueError("cannot split a non-zero total over no lines")
        return []
    if any(weight < 0 for weight in weights):
        raise ValueError("weights must not be negative")
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    parts = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    left = total - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


@dataclass(frozen=True)
class LineShare:
    """One line's part of every order-level amount, in minor units."""

    goods_minor: int
    promotion_minor: int = 0
    coupon_minor: int = 0
    points_minor: int = 0
    shipping_minor: int = 0

    @property
    def discount_minor(self) -> int:
        return self.promotion_minor + self.coupon_minor + self.points_minor

    @property
    def paid_minor(self) -> int:
        """What the customer actually paid for the line, its share of shipping included."""
        return self.goods_minor - self.discount_minor + self.shipping_minor


def split_order(
    goods: Sequence[int], promotion: int, coupon: int, points: int, shipping: int
) -> list[LineShare]:
    """Each discount is split by the lines' goods amounts; a discount never exceeds a line's goods.

    Discounts are applied in the order promotion, coupon, points, each weighted by what is still
    left to pay on the line, so no line's paid amount goes negative. Shipping is split by goods.
    """
    if promotion + coupon + points > sum(goods):
        raise ValueError("discounts exceed the goods amount")
    left = list(goods)
    buckets: list[list[int]] = []
    for amount in (promotion, coupon, points):
        parts = _capped(amount, left)
        left = [rest - part for rest, part in zip(left, parts, strict=True)]
        buckets.append(parts)
    shipping_parts = apportion(shipping, goods)
    return [
        LineShare(goods[i], buckets[0][i], buckets[1][i], buckets[2][i], shipping_parts[i])
        for i in range(len(goods))
    ]


def _capped(amount: int, room: Sequence[int]) -> list[int]:
    """Apportion by `room`; with every weight positive no part can exceed its room."""
    if amount == 0:
        return [0] * len(room)
    if sum(room) == amount:
        return list(room)
    return apportion(amount, room)
