"""Refunds (the execution queue and the finance ledger), restocks and approval rule sets on real
Postgres: due rows leased to one worker at a time, answers and settlements recorded, the ledger
paged newest first, one active rule set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from services.aftersales.domain.approval import (
    RuleSetStatus,
    activate,
    default_rule_set,
    draft,
    to_document,
)
from services.aftersales.domain.events import RefundFailure
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.ports import RestockJob
from services.aftersales.handlers.refunds import ledger_csv_header
from services.aftersales.store.tickets import BadToken
from services.aftersales.store.uow import AftersalesUnitOfWork
from services.kit.errors import FailedPrecondition, NotFound
from tests.unit.aftersales.builders import T0, order, ticket

pytestmark = pytest.mark.timeout(60)
NewUow = Callable[[], AftersalesUnitOfWork]
MINUTE = timedelta(minutes=1)
LEASE = 5 * MINUTE


def asked(ticket_id: str, order_id: str, at: timedelta = timedelta(0)) -> Ticket:
    t = ticket(
        order(order_id=order_id),
        [(0, 1), (2, 2)],
        ticket_id=ticket_id,
        kind=TicketKind.REFUND_ONLY,
        reason=Reason.DAMAGED,
        at=T0 + at,
    )
    t.approve("agent-1", T0 + at)
    t.request_refund(T0 + at)
    return t


async def add_refunds(new_uow: NewUow, *tickets: Ticket, by: str = "agent-1") -> None:
    async with new_uow() as uow:
        for t in tickets:
            assert t.refund_requested_at is not None
            await uow.refunds.add(t, by, t.refund_requested_at)
        await uow.commit()


# ---- refunds


async def test_a_refund_is_queued_with_its_voucher_s_amounts_per_bucket(new_uow: NewUow) -> None:
    t = asked("t-1", "o-1")
    await add_refunds(new_uow, t, by="supervisor-7")
    await add_refunds(new_uow, t)  # again: nothing changes
    async with new_uow() as uow:
        (row,) = (await uow.conn.execute(text("SELECT * FROM refunds"))).mappings().all()
    assert t.voucher is not None and t.order.payment is not None
    totals = t.voucher.totals
    assert row["out_refund_no"] == "RFt-1" and row["ticket_id"] == "t-1" and row["attempt"] == 1
    assert row["status"] == "PENDING" and row["attempts"] == 0 and row["next_attempt_at"] == T0
    assert row["approved_by"] == "supervisor-7" and row["requested_at"] == T0
    assert row["cash"] == t.voucher.cash_minor == totals.paid_minor > 0
    assert [row[bucket] for bucket in ("goods", "promotion", "coupon", "points", "shipping")] == [
        totals.goods_minor,
        totals.promotion_minor,
        totals.coupon_minor,
        totals.points_minor,
        totals.shipping_minor,
    ]
    assert row["total_paid"] == t.order.payment.amount_minor
    assert (row["provider"], row["transaction_id"], row["merchant_order_no"]) == (
        "wechat_pay",
        t.order.payment.transaction_id,
        "OMSo-1",
    )


async def test_a_ticket_without_its_refund_asked_has_nothing_to_queue(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        with pytest.raises(FailedPrecondition, match="has not asked for its refund"):
            await uow.refunds.add(ticket(), "agent-1", T0)


async def test_due_refunds_are_leased_sent_again_after_the_lease_and_then_asked_after(
    new_uow: NewUow,
) -> None:
    await add_refunds(new_uow, asked("t-1", "o-1"))
    async with new_uow() as uow:
        (job,) = await uow.refunds.claim_due(T0, T0 + LEASE, 10)
        await uow.commit()
    assert (job.refund_no, job.status, job.attempts, job.ticket_id) == ("RFt-1", "PENDING", 1, "t-1")
    assert job.cash_minor > 0 and job.currency == "CNY" and job.provider == "wechat_pay"
    async with new_uow() as uow:
        # leased: nobody else takes it until the lease ends (a worker that died gives it back then)
        assert await uow.refunds.claim_due(T0 + MINUTE, T0 + LEASE, 10) == []
        (again,) = await uow.refunds.claim_due(T0 + LEASE, T0 + 2 * LEASE, 10)
        assert (again.status, again.attempts) == ("SENDING", 2)
        await uow.refunds.answered("RFt-1", "PROCESSING", "50300001", T0 + LEASE + MINUTE, "")
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.refunds.claim_due(T0 + LEASE, T0 + 2 * LEASE, 10) == []
        (asking,) = await uow.refunds.claim_due(T0 + LEASE + MINUTE, T0 + 2 * LEASE, 10)
        assert (asking.status, asking.attempts) == ("PROCESSING", 3)
        # an answer without the provider's id keeps the one known; the error is kept for people
        await uow.refunds.answered("RFt-1", "PROCESSING", "", T0 + 3 * LEASE, "timeout after 3 s")
        await uow.commit()
    async with new_uow() as uow:
        row = (await uow.conn.execute(text("SELECT * FROM refunds"))).mappings().one()
        assert row["provider_refund_id"] == "50300001" and row["last_error"] == "timeout after 3 s"
        await uow.refunds.settled("RFt-1", "SUCCESS", "50300001", T0 + 3 * LEASE)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.refunds.claim_due(T0 + 100 * LEASE, T0 + 101 * LEASE, 10) == []
        row = (await uow.conn.execute(text("SELECT * FROM refunds"))).mappings().one()
        assert row["status"] == "SUCCESS" and row["settled_at"] == T0 + 3 * LEASE
        assert row["next_attempt_at"] is None and row["attempts"] == 3
        with pytest.raises(NotFound):
            await uow.refunds.answered("RFt-404", "PROCESSING", "", None, "")
        with pytest.raises(NotFound):
            await uow.refunds.settled("RFt-404", "SUCCESS", "", T0)


async def test_workers_claiming_together_share_the_due_refunds_out(new_uow: NewUow) -> None:
    await add_refunds(new_uow, *(asked(f"t-{n}", f"o-{n}", n * MINUTE) for n in range(3)))
    now = T0 + 10 * MINUTE
    async with new_uow() as first, new_uow() as second:
        mine = await first.refunds.claim_due(now, now + LEASE, 2)
        theirs = await asyncio.wait_for(second.refunds.claim_due(now, now + LEASE, 10), 5)
        assert [job.refund_no for job in mine] == ["RFt-0", "RFt-1"]
        assert [job.refund_no for job in theirs] == ["RFt-2"]


async def test_a_new_attempt_after_closed_is_a_row_of_its_own_in_the_ledger(new_uow: NewUow) -> None:
    t = asked("t-1", "o-1")
    await add_refunds(new_uow, t)
    async with new_uow() as uow:
        await uow.refunds.settled("RFt-1", "CLOSED", "50300001", T0 + MINUTE)
        await uow.commit()
    t.refund_failed("RFt-1", RefundFailure.CLOSED, "closed", T0 + MINUTE)
    t.retry_refund(T0 + 2 * MINUTE)
    await add_refunds(new_uow, t, by="supervisor-1")
    async with new_uow() as uow:
        (job,) = await uow.refunds.claim_due(T0 + 2 * MINUTE, T0 + LEASE, 10)
        assert job.refund_no == "RFt-1_2" and job.ticket_id == "t-1" and job.status == "PENDING"
        rows, token = await uow.refunds.ledger(None, None, 10, "")
    assert token == ""
    assert [(r["out_refund_no"], r["status"], r["attempt"], r["approved_by"]) for r in rows] == [
        ("RFt-1_2", "SENDING", 2, "supervisor-1"),
        ("RFt-1", "CLOSED", 1, "agent-1"),
    ]
    assert rows[0]["cash"] == rows[1]["cash"] and "next_attempt_at" not in rows[0]
    # what finance's export reads of each row
    assert set(ledger_csv_header()) <= set(rows[0])


async def test_the_ledger_pages_newest_first_within_the_times_asked(new_uow: NewUow) -> None:
    await add_refunds(new_uow, *(asked(f"t-{n}", f"o-{n}", n * MINUTE) for n in range(5)))

    async def numbers(since: timedelta | None, until: timedelta | None, size: int) -> list[str]:
        found: list[str] = []
        token = ""
        async with new_uow() as uow:
            while True:
                rows, token = await uow.refunds.ledger(
                    T0 + since if since is not None else None,
                    T0 + until if until is not None else None,
                    size,
                    token,
                )
                assert len(rows) <= size
                found += [str(row["out_refund_no"]) for row in rows]
                if not token:
                    return found

    assert await numbers(None, None, 2) == ["RFt-4", "RFt-3", "RFt-2", "RFt-1", "RFt-0"]
    assert await numbers(1 * MINUTE, 3 * MINUTE, 1) == ["RFt-2", "RFt-1"]
    assert await numbers(4 * MINUTE, None, 5) == ["RFt-4"]
    assert await numbers(None, timedelta(0), 5) == []
    async with new_uow() as uow:
        with pytest.raises(BadToken):
            await uow.refunds.ledger(None, None, 5, "garbage")


# ---- restocks


def restock(return_id: str, warehouse: str = "WH-SH") -> RestockJob:
    return RestockJob(return_id, "t-1", "o-1", warehouse, (("SKU-0", 2), ("SKU-2", 1)), 0)


async def test_a_restock_is_leased_retried_and_done_once(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        await uow.restocks.add(restock("r-1"), T0)
        await uow.restocks.add(restock("r-1", "WH-ELSEWHERE"), T0)
        await uow.restocks.add(restock("r-2"), T0 + MINUTE)
        await uow.commit()
    async with new_uow() as first, new_uow() as second:
        (mine,) = await first.restocks.claim_due(T0 + MINUTE, T0 + LEASE, 1)
        (theirs,) = await asyncio.wait_for(second.restocks.claim_due(T0 + MINUTE, T0 + LEASE, 10), 5)
        assert mine == RestockJob("r-1", "t-1", "o-1", "WH-SH", (("SKU-0", 2), ("SKU-2", 1)), 1)
        assert theirs.return_id == "r-2"
        await first.restocks.retry("r-1", T0 + 2 * LEASE, "inventory unavailable")
        await first.commit()
    async with new_uow() as uow:
        # r-2's claim was rolled back: due again now; r-1 waits for its retry time
        assert [job.return_id for job in await uow.restocks.claim_due(T0 + LEASE, T0 + 9 * LEASE, 10)] == [
            "r-2"
        ]
        (retried,) = await uow.restocks.claim_due(T0 + 2 * LEASE, T0 + 3 * LEASE, 10)
        assert retried.return_id == "r-1" and retried.attempts == 2
        await uow.restocks.done("r-1", T0 + 2 * LEASE)
        await uow.commit()
    async with new_uow() as uow:
        assert [job.return_id for job in await uow.restocks.claim_due(T0 + 99 * LEASE, T0, 10)] == ["r-2"]
        row = (
            (await uow.conn.execute(text("SELECT * FROM restocks WHERE return_id = 'r-1'"))).mappings().one()
        )
        assert row["restocked_at"] == T0 + 2 * LEASE and row["next_attempt_at"] is None
        assert row["last_error"] == "" and row["warehouse_id"] == "WH-SH"
        with pytest.raises(NotFound):
            await uow.restocks.done("r-404", T0)


# ---- rule sets


async def test_rule_sets_are_numbered_drafted_and_one_is_active(new_uow: NewUow) -> None:
    document = to_document(default_rule_set())
    async with new_uow() as uow:
        assert await uow.rule_sets.active() is None and await uow.rule_sets.all() == []
        assert await uow.rule_sets.next_version() == 1
        first, _ = activate(draft(1, document, "the default", T0), None, T0)
        await uow.rule_sets.save(first, "ops-1")
        await uow.commit()
    tighter = {"rules": [{**document["rules"][0], "conditions": {"max_amount_minor": 5000}}]}
    async with new_uow() as uow:
        version = await uow.rule_sets.next_version()
        assert version == 2
        second = draft(version, tighter, "smaller amounts only", T0 + MINUTE)
        await uow.rule_sets.save(second, "ops-2")
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.rule_sets.get(2, lock=True)
        assert stored == second and stored is not None and stored.rule_set().rules[0].name
        active = await uow.rule_sets.active()
        assert active == first
        activated, retired = activate(stored, active, T0 + 2 * MINUTE)
        # activating before retiring the active one: the database refuses a second active
        with pytest.raises(FailedPrecondition, match="another one is"):
            await uow.rule_sets.save(activated)
    async with new_uow() as uow:
        stored = await uow.rule_sets.get(2, lock=True)
        active = await uow.rule_sets.active()
        assert stored is not None and active is not None
        activated, retired = activate(stored, active, T0 + 2 * MINUTE)
        assert retired is not None
        await uow.rule_sets.save(retired)
        await uow.rule_sets.save(activated)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.rule_sets.active() == activated
        assert [(v.version, v.status) for v in await uow.rule_sets.all()] == [
            (2, RuleSetStatus.ACTIVE),
            (1, RuleSetStatus.RETIRED),
        ]
        assert (await uow.rule_sets.all())[1].activated_at == T0
        creators = (
            await uow.conn.execute(text("SELECT created_by FROM approval_rule_sets ORDER BY 1"))
        ).all()
        assert [row.created_by for row in creators] == ["ops-1", "ops-2"]
        assert await uow.rule_sets.get(9) is None


async def test_two_drafts_at_the_same_time_get_different_numbers(new_uow: NewUow) -> None:
    document = to_document(default_rule_set())

    async def drafting(note: str, hold: float) -> int:
        async with new_uow() as uow:
            version = await uow.rule_sets.next_version()
            await asyncio.sleep(hold)
            await uow.rule_sets.save(draft(version, document, note, T0), "ops")
            await uow.commit()
            return version

    numbers = await asyncio.gather(drafting("a", 0.3), drafting("b", 0.0))
    assert sorted(numbers) == [1, 2]
    async with new_uow() as uow:
        assert sorted(v.note for v in await uow.rule_sets.all()) == ["a", "b"]
