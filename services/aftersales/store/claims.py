"""What an order's refunds have claimed of each of its lines, per bucket, against what was paid.

A line has six rows (`CLAIM_BUCKETS`): its units and its goods, promotion, coupon, points and shipping
amounts, each with what was paid (from the order as the first claiming ticket saw it: the buckets
orders fixed at acceptance never change) and what refunds have claimed of it. A claim locks the
rows it adds to in one order (line, then bucket), so two claims on the same order queue up instead
of deadlocking; the second, once the first has committed, sees the first's amounts. The table's
CHECK (`claimed <= paid`) refuses whatever would go past what was paid, whoever writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy.exc
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftersales.domain.errors import Refused
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.vouchers import Voucher
from services.aftersales.store.constraints import violated
from services.aftersales.store.tables import CLAIM_BUCKETS, line_claims_table
from services.kit.errors import FailedPrecondition

_c = line_claims_table.c
_CHECK = "line_claims_within_paid"
# the request's field each bucket is about (the domain's names: `lines[i].quantity`, `…goods_minor`)
_FIELD = {"units": "quantity", **{bucket: f"{bucket}_minor" for bucket in CLAIM_BUCKETS[1:]}}

_LOCK = (
    select(_c.line_index, _c.bucket, _c.paid, _c.claimed)
    .where(_c.order_id == bindparam("order_id"), _c.line_index.in_(bindparam("lines", expanding=True)))
    .order_by(_c.line_index, _c.bucket)
    .with_for_update()
)
_ADD = (
    update(line_claims_table)
    .where(
        _c.order_id == bindparam("b_order_id"),
        _c.line_index == bindparam("b_line_index"),
        _c.bucket == bindparam("b_bucket"),
    )
    .values(claimed=_c.claimed + bindparam("b_amount"))
)


def _amounts(voucher: Voucher) -> Iterator[tuple[int, int, str, int]]:
    """(position in the voucher, line index, bucket, amount) of every bucket the voucher moves."""
    for position, line in enumerate(voucher.lines):
        yield position, line.line_index, "units", line.quantity
        for bucket in CLAIM_BUCKETS[1:]:
            yield position, line.line_index, bucket, getattr(line.amounts, f"{bucket}_minor")


class ClaimRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _locked(self, order_id: str, voucher: Voucher) -> dict[tuple[int, str], tuple[int, int]]:
        """The rows of the voucher's lines, locked: (line, bucket) → (paid, claimed)."""
        lines = sorted({line.line_index for line in voucher.lines})
        rows = await self.conn.execute(_LOCK, {"order_id": order_id, "lines": lines})
        return {(row.line_index, row.bucket): (row.paid, row.claimed) for row in rows}

    async def _move(self, order_id: str, voucher: Voucher, sign: int) -> None:
        moves = [
            {"b_order_id": order_id, "b_line_index": index, "b_bucket": bucket, "b_amount": sign * amount}
            for _, index, bucket, amount in _amounts(voucher)
            if amount
        ]
        if not moves:
            return
        try:
            await self.conn.execute(_ADD, sorted(moves, key=lambda m: (m["b_line_index"], m["b_bucket"])))
        except sqlalchemy.exc.IntegrityError as error:
            if violated(error) == _CHECK:
                raise FailedPrecondition(
                    f"lines: order {order_id}'s refund would take a line past what was paid (or below "
                    "nothing)"
                ) from None
            raise

    async def claim(self, order: OrderSnapshot, voucher: Voucher) -> None:
        """Add the voucher's units and amounts to what the order's lines have given back.

        Refused (FAILED_PRECONDITION) naming the voucher's line and bucket, `lines[i].quantity` or
        `lines[i].coupon_minor`, when it would take more than was paid, counting every claim
        committed before (a concurrent claim waits for this one's row locks, then is refused)."""
        rows: list[dict[str, Any]] = []
        for line in voucher.lines:
            snapshot = order.lines[line.line_index]
            rows.append(
                {
                    "order_id": order.order_id,
                    "line_index": line.line_index,
                    "bucket": "units",
                    "paid": snapshot.quantity,
                    "claimed": 0,
                }
            )
            for bucket in CLAIM_BUCKETS[1:]:
                paid = getattr(snapshot.amounts, f"{bucket}_minor")
                rows.append(
                    {
                        "order_id": order.order_id,
                        "line_index": line.line_index,
                        "bucket": bucket,
                        "paid": paid,
                        "claimed": 0,
                    }
                )
        if not rows:
            return
        await self.conn.execute(insert(line_claims_table).values(rows).on_conflict_do_nothing())
        held = await self._locked(order.order_id, voucher)
        for position, index, bucket, amount in _amounts(voucher):
            paid, claimed = held[(index, bucket)]
            if claimed + amount > paid:
                left = max(paid - claimed, 0)
                what = "units" if bucket == "units" else f"of {bucket} (minor units)"
                raise Refused(
                    f"lines[{position}].{_FIELD[bucket]}",
                    f"line {index} of order {order.order_id}: {amount} {what} asked, {left} of the "
                    f"{paid} paid are left (the order's other refunds took the rest)",
                )
        await self._move(order.order_id, voucher, 1)

    async def release(self, order_id: str, voucher: Voucher) -> None:
        """Give a refund's amounts back to the lines (the provider closed it). Refused naming the line
        when the lines do not hold that much (a release without its claim, or twice)."""
        held = await self._locked(order_id, voucher)
        for position, index, bucket, amount in _amounts(voucher):
            _, claimed = held.get((index, bucket), (0, 0))
            if amount > claimed:
                raise Refused(
                    f"lines[{position}].{_FIELD[bucket]}",
                    f"line {index} of order {order_id} holds {claimed} claimed, {amount} cannot be released",
                )
        await self._move(order_id, voucher, -1)
