"""What an order's refunds have claimed of each of its lines, per bucket, against what was paid.

A line has six rows (`CLAIM_BUCKETS`): its units and its goods, promotion, coupon, points and shipping
amounts, each with what was paid (from the order as the first claiming ticket saw it: the buckets
orders fixed at acceptance never change) and what refunds have claimed of it. A claim locks the
rows it adds to in one order (line, then bucket), so two claims on the same order queue up instead
of deadlocking; the second, once the first has committed, sees the first's amounts. The table's
CHECK (`claimed <= paid`) refuses whatever would go past what was paid, whoever writes."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy.exc
from sqlalchemy import bindparam, select, text, update
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
# a voucher's rows in one statement, in (line, bucket) order (two claims on an order lock its rows in
# the same order, so they queue instead of deadlocking): a row not there yet is added with what was
# paid; one there is added to only where the sum stays within what was paid (the rows returned)
_CLAIM = text(
    """
    INSERT INTO line_claims (order_id, line_index, bucket, paid, claimed)
    SELECT :order_id, u.line_index, u.bucket, u.paid, u.claimed
    FROM unnest(CAST(:lines AS integer[]), CAST(:buckets AS varchar[]), CAST(:paid AS bigint[]),
                CAST(:amounts AS bigint[])) AS u(line_index, bucket, paid, claimed)
    ORDER BY u.line_index, u.bucket
    ON CONFLICT (order_id, line_index, bucket) DO UPDATE
        SET claimed = line_claims.claimed + excluded.claimed
        WHERE line_claims.claimed + excluded.claimed <= line_claims.paid
    RETURNING line_index, bucket
    """
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
        committed before (a concurrent claim waits for this one's row locks, then is refused).

        One statement (`_CLAIM`): it adds the first rows of a line, with what was paid from the order,
        or adds to the rows there, each only where it stays within what was paid; a refusal reads the
        rows it could not add to, to say what is left."""
        moves: dict[tuple[int, str], list[int]] = {}
        for _, index, bucket, amount in _amounts(voucher):
            line = order.lines[index]
            paid = line.quantity if bucket == "units" else getattr(line.amounts, f"{bucket}_minor")
            moves.setdefault((index, bucket), [paid, 0])[1] += amount
        if not moves:
            return
        keys = sorted(moves)
        arguments = {
            "order_id": order.order_id,
            "lines": [index for index, _ in keys],
            "buckets": [bucket for _, bucket in keys],
            "paid": [moves[key][0] for key in keys],
            "amounts": [moves[key][1] for key in keys],
        }
        try:
            added = {(row.line_index, row.bucket) for row in await self.conn.execute(_CLAIM, arguments)}
        except sqlalchemy.exc.IntegrityError as error:
            if violated(error) == _CHECK:
                # a line's first claim asking more than was paid: the transaction is spent, so the
                # refusal says what was paid (nothing else was claimed of a row that was not there)
                raise _refusal(voucher, {key: (moves[key][0], 0) for key in keys}, set()) from None
            raise
        if len(added) < len(keys):
            raise _refusal(voucher, await self._locked(order.order_id, voucher), added)

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


def _refusal(
    voucher: Voucher, held: dict[tuple[int, str], tuple[int, int]], added: set[tuple[int, str]]
) -> Exception:
    """The first of the voucher's buckets that does not fit in what is left, named (`held`: paid and
    claimed per row, where `added` rows already count this voucher's amounts)."""
    order_id = voucher.order_id
    own: dict[tuple[int, str], int] = {}
    for _, index, bucket, amount in _amounts(voucher):
        own[(index, bucket)] = own.get((index, bucket), 0) + amount
    for position, index, bucket, amount in _amounts(voucher):
        paid, claimed = held.get((index, bucket), (0, 0))
        if (index, bucket) in added:
            claimed -= own[(index, bucket)]
        if claimed + amount > paid:
            left = max(paid - claimed, 0)
            what = "units" if bucket == "units" else f"of {bucket} (minor units)"
            return Refused(
                f"lines[{position}].{_FIELD[bucket]}",
                f"line {index} of order {order_id}: {amount} {what} asked, {left} of the "
                f"{paid} paid are left (the order's other refunds took the rest)",
            )
    return FailedPrecondition(
        f"lines: order {order_id}'s refund would take a line past what was paid (or below nothing)"
    )
