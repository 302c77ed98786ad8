"""Line claims on real Postgres: never more given back, per line and per bucket, than was paid, even
when two tickets of the same order claim at the same moment (the second waits for the first's row
locks, then is refused naming the line)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from services.aftersales.domain.errors import Refused
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import Ticket
from services.aftersales.domain.vouchers import Voucher
from services.aftersales.store.constraints import violated
from services.aftersales.store.uow import AftersalesUnitOfWork
from services.kit.errors import FailedPrecondition
from tests.unit.aftersales.builders import T0, order, ticket

pytestmark = pytest.mark.timeout(60)
NewUow = Callable[[], AftersalesUnitOfWork]
SNAPSHOT = order()


def refund_asked(
    lines: Sequence[tuple[int, int]], ticket_id: str, reason: Reason, others: Sequence[Ticket] = ()
) -> Ticket:
    """A refund-only ticket approved and asked for, after what `others` took."""
    t = ticket(
        SNAPSHOT, lines, ticket_id=ticket_id, kind=TicketKind.REFUND_ONLY, reason=reason, others=others
    )
    t.approve("agent-1", T0)
    t.request_refund(T0, others=others)
    assert t.voucher is not None
    return t


def voucher(t: Ticket) -> Voucher:
    assert t.voucher is not None
    return t.voucher


async def claimed(new_uow: NewUow, order_id: str = "o-1") -> dict[tuple[int, str], tuple[int, int]]:
    async with new_uow() as uow:
        rows = await uow.conn.execute(
            text("SELECT line_index, bucket, paid, claimed FROM line_claims WHERE order_id = :o"),
            {"o": order_id},
        )
        return {(row.line_index, row.bucket): (row.paid, row.claimed) for row in rows}


async def claim(new_uow: NewUow, snapshot: OrderSnapshot, v: Voucher, hold: float = 0.0) -> None:
    async with new_uow() as uow:
        await uow.claims.claim(snapshot, v)
        # keep the row locks a while, so a claim running at the same time has to wait for them
        await asyncio.sleep(hold)
        await uow.commit()


async def test_a_claim_adds_the_voucher_to_the_lines_against_what_was_paid(new_uow: NewUow) -> None:
    first = refund_asked([(0, 1), (2, 2)], "t-1", Reason.DAMAGED)
    await claim(new_uow, SNAPSHOT, voucher(first))
    rows = await claimed(new_uow)
    line0, line2 = voucher(first).lines
    assert rows[(0, "units")] == (2, 1) and rows[(2, "units")] == (3, 2)
    for bucket in ("goods", "promotion", "coupon", "points", "shipping"):
        assert rows[(0, bucket)] == (
            getattr(SNAPSHOT.lines[0].amounts, f"{bucket}_minor"),
            getattr(line0.amounts, f"{bucket}_minor"),
        )
        assert rows[(2, bucket)][1] == getattr(line2.amounts, f"{bucket}_minor")
    assert not any(index == 1 for index, _ in rows)
    # the rest of line 2, after the first: it fits exactly
    rest = refund_asked([(2, 1)], "t-2", Reason.SIZE_FIT, others=[first])
    await claim(new_uow, SNAPSHOT, voucher(rest))
    rows = await claimed(new_uow)
    assert rows[(2, "units")] == (3, 3)
    assert rows[(2, "promotion")] == (SNAPSHOT.lines[2].amounts.promotion_minor,) * 2


async def test_two_claims_of_the_last_unit_at_the_same_moment_one_is_refused(new_uow: NewUow) -> None:
    first = refund_asked([(2, 2)], "t-1", Reason.DAMAGED)
    await claim(new_uow, SNAPSHOT, voucher(first))
    # two tickets opened and approved at the same moment, neither seeing the other
    left = [
        refund_asked([(2, 1)], f"t-{n}", reason, others=[first])
        for n, reason in ((2, Reason.WRONG_ITEM), (3, Reason.QUALITY_ISSUE))
    ]
    assert voucher(left[0]).lines == voucher(left[1]).lines
    results = await asyncio.gather(
        *(claim(new_uow, SNAPSHOT, voucher(t), hold=0.3) for t in left), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert results.count(None) == 1 and len(refused) == 1
    error = refused[0]
    assert isinstance(error, Refused) and isinstance(error, FailedPrecondition)
    assert error.field == "lines[0].quantity" and error.message.startswith("lines[0].quantity: ")
    assert "0 of the 3 paid are left" in error.message
    rows = await claimed(new_uow)
    assert rows[(2, "units")] == (3, 3)
    # merchant's reasons all three: every bucket of the line, its shipping too, is given back exactly
    for bucket in ("goods", "promotion", "coupon", "points", "shipping"):
        paid, taken = rows[(2, bucket)]
        assert taken == paid


async def test_two_claims_that_together_take_more_of_a_bucket_one_is_refused(new_uow: NewUow) -> None:
    # each takes one of line 0's two units with more than half of its coupon (hand-made vouchers)
    base = voucher(refund_asked([(0, 1)], "t-1", Reason.SIZE_FIT))
    coupon = SNAPSHOT.lines[0].amounts.coupon_minor // 2 + 1
    line = base.lines[0]
    greedy = dataclasses.replace(
        base,
        lines=(dataclasses.replace(line, amounts=dataclasses.replace(line.amounts, coupon_minor=coupon)),),
    )
    results = await asyncio.gather(
        *(claim(new_uow, SNAPSHOT, greedy, hold=0.3) for _ in range(2)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert results.count(None) == 1 and len(refused) == 1
    assert isinstance(refused[0], Refused) and refused[0].field == "lines[0].coupon_minor"
    rows = await claimed(new_uow)
    assert rows[(0, "coupon")] == (SNAPSHOT.lines[0].amounts.coupon_minor, coupon)
    assert rows[(0, "units")] == (2, 1)


async def test_the_refusal_names_the_voucher_s_line_and_writes_nothing(new_uow: NewUow) -> None:
    first = refund_asked([(2, 3)], "t-1", Reason.DAMAGED)
    await claim(new_uow, SNAPSHOT, voucher(first))
    # made before the first existed: line 0 fits, its second line (order line 2) does not
    late = refund_asked([(0, 1), (2, 1)], "t-2", Reason.SIZE_FIT)
    before = await claimed(new_uow)
    with pytest.raises(Refused) as refused:
        await claim(new_uow, SNAPSHOT, voucher(late))
    assert refused.value.field == "lines[1].quantity" and "line 2 of order o-1" in refused.value.message
    after = await claimed(new_uow)
    assert {key: value for key, value in after.items() if key[0] == 2} == {
        key: value for key, value in before.items() if key[0] == 2
    }
    assert after.get((0, "units"), (2, 0)) == (2, 0)


async def test_the_database_itself_refuses_a_claim_past_what_was_paid(new_uow: NewUow) -> None:
    await claim(new_uow, SNAPSHOT, voucher(refund_asked([(1, 1)], "t-1", Reason.DAMAGED)))
    async with new_uow() as uow:
        with pytest.raises(sqlalchemy.exc.IntegrityError) as broken:
            await uow.conn.execute(
                text("UPDATE line_claims SET claimed = claimed + 1 WHERE bucket = 'units' AND line_index = 1")
            )
        assert violated(broken.value) == "line_claims_within_paid"


async def test_a_release_gives_the_amounts_back_once(new_uow: NewUow) -> None:
    first = refund_asked([(0, 2)], "t-1", Reason.DAMAGED)
    await claim(new_uow, SNAPSHOT, voucher(first))
    async with new_uow() as uow:
        await uow.claims.release("o-1", voucher(first))
        await uow.commit()
    rows = await claimed(new_uow)
    assert rows and all(taken == 0 for _, taken in rows.values())
    async with new_uow() as uow:
        with pytest.raises(Refused) as refused:
            await uow.claims.release("o-1", voucher(first))
        assert refused.value.field == "lines[0].quantity"
    # what was released can be claimed again (a person's new attempt after CLOSED)
    await claim(new_uow, SNAPSHOT, voucher(first))
    assert (await claimed(new_uow))[(0, "units")] == (2, 2)
