"""Tickets on real Postgres: the whole ticket reads back as written, writes are checked against the
version read, the database keeps one open ticket per reason and one ticket per request id, the SLA
sweep's rows are shared out between sweepers, lists page newest first, events go to the outbox."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from services.aftersales.domain.approval import default_rule_set, evaluate
from services.aftersales.domain.errors import Refused
from services.aftersales.domain.events import RefundFailure
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.ports import ConcurrentChange, TicketFilter
from services.aftersales.store.tickets import BadToken
from services.aftersales.store.uow import AftersalesUnitOfWork
from services.kit.errors import AlreadyExists
from tests.integration.aftersales.conftest import encode_event
from tests.unit.aftersales.builders import T0, order, ticket

pytestmark = pytest.mark.timeout(60)
NewUow = Callable[[], AftersalesUnitOfWork]
K, S = TicketKind, TicketStatus
HOUR = timedelta(hours=1)


async def add(new_uow: NewUow, *tickets: Ticket, request_id: str = "") -> None:
    async with new_uow() as uow:
        for t in tickets:
            await uow.tickets.add(t, request_id, t.next_deadline())
        await uow.commit()


def refund_only(ticket_id: str = "t-1", order_id: str = "o-1", **kwargs: object) -> Ticket:
    return ticket(order(order_id=order_id), ticket_id=ticket_id, kind=K.REFUND_ONLY, **kwargs)  # type: ignore[arg-type]


async def test_a_ticket_reads_back_as_it_was_added_and_saved(new_uow: NewUow) -> None:
    opened = ticket(order(customised=[False, None, True]), [(0, 2), (2, 1)], note="偏小 too small")
    await add(new_uow, opened, request_id="req-1")
    async with new_uow() as uow:
        read = await uow.tickets.get("t-1")
        assert read == opened and read is not opened
        assert await uow.tickets.by_request("req-1") == opened
        assert await uow.tickets.by_request("") is None
        assert await uow.tickets.get("t-404") is None
        assert [t.ticket_id for t in await uow.tickets.of_order("o-1")] == ["t-1"]
        assert read is not None
        read.approve("agent-1", T0 + HOUR)
        read.mark_return_sent("SF0001", T0 + 2 * HOUR)
        await uow.tickets.save(read, read.next_deadline())
        # saving again in the same unit of work goes on from the version just written
        read.updated_at = T0 + 3 * HOUR
        await uow.tickets.save(read, None)
        await uow.commit()
    async with new_uow() as uow:
        again = await uow.tickets.get("t-1")
        assert again == read and again is not None and again.status is S.RETURN_PENDING
        row = (
            await uow.conn.execute(
                text("SELECT status, version, next_deadline, overdue, channel FROM tickets")
            )
        ).one()
        assert tuple(row) == ("RETURN_PENDING", 3, None, False, "OWN_SHOP")


async def test_a_save_over_a_ticket_changed_since_it_was_read_is_refused(new_uow: NewUow) -> None:
    await add(new_uow, ticket())
    async with new_uow() as first, new_uow() as second:
        mine = await first.tickets.get("t-1")
        theirs = await second.tickets.get("t-1")
        assert mine is not None and theirs is not None
        mine.approve("agent-1", T0 + HOUR)
        await first.tickets.save(mine, None)
        await first.commit()
        theirs.reject("agent-2", "no", T0 + HOUR)
        with pytest.raises(ConcurrentChange):
            await second.tickets.save(theirs, None)
    async with new_uow() as uow:
        stored = await uow.tickets.get("t-1")
        assert stored is not None and stored.status is S.APPROVED and stored.answered_by == "agent-1"


async def test_saving_a_ticket_not_read_through_the_unit_of_work_is_a_bug(new_uow: NewUow) -> None:
    await add(new_uow, ticket())
    async with new_uow() as uow:
        with pytest.raises(RuntimeError, match="not read through this unit of work"):
            await uow.tickets.save(ticket(), None)


async def test_the_database_keeps_one_open_ticket_per_reason_on_an_order(new_uow: NewUow) -> None:
    first = ticket(ticket_id="t-1", reason=Reason.SIZE_FIT)
    await add(new_uow, first)
    # opened without seeing the first (as a racing request would): the unique index refuses it
    second = ticket(order(), [(1, 1)], ticket_id="t-2", reason=Reason.SIZE_FIT)
    async with new_uow() as uow:
        with pytest.raises(Refused) as refused:
            await uow.tickets.add(second, "", None)
        assert refused.value.field == "reason" and "one open ticket per reason" in refused.value.message
    # another reason, or another order, is fine; once the first is closed, so is the same reason
    await add(new_uow, ticket(ticket_id="t-3", reason=Reason.DAMAGED))
    await add(new_uow, ticket(order(order_id="o-2"), ticket_id="t-4", reason=Reason.SIZE_FIT))
    async with new_uow() as uow:
        closing = await uow.tickets.get("t-1")
        assert closing is not None
        closing.close("c-1", T0 + HOUR)
        await uow.tickets.save(closing, None)
        await uow.commit()
    await add(new_uow, second)
    async with new_uow() as uow:
        assert [t.ticket_id for t in await uow.tickets.of_order("o-1")] == ["t-1", "t-2", "t-3"]


async def test_a_repeated_request_id_is_refused_and_the_first_ticket_can_still_be_read(
    new_uow: NewUow,
) -> None:
    await add(new_uow, ticket(ticket_id="t-1"), request_id="req-9")
    async with new_uow() as uow:
        with pytest.raises(AlreadyExists, match="req-9"):
            await uow.tickets.add(ticket(order(order_id="o-2"), ticket_id="t-2"), "req-9", None)
        # the transaction is still usable: the use case answers with the ticket the request opened
        first = await uow.tickets.by_request("req-9")
        assert first is not None and first.ticket_id == "t-1"
    async with new_uow() as uow:
        with pytest.raises(AlreadyExists, match="ticket t-1 exists"):
            await uow.tickets.add(ticket(order(order_id="o-3"), ticket_id="t-1"), "", None)


async def test_a_ticket_is_found_by_its_current_and_its_earlier_refund_numbers(new_uow: NewUow) -> None:
    await add(new_uow, refund_only())
    async with new_uow() as uow:
        t = await uow.tickets.get("t-1", lock=True)
        assert t is not None
        t.approve("agent-1", T0 + HOUR)
        t.request_refund(T0 + HOUR)
        await uow.tickets.save(t, None)
        await uow.refunds.add(t, "agent-1", T0 + HOUR)
        await uow.commit()
    async with new_uow() as uow:
        t = await uow.tickets.by_refund_no("RFt-1", lock=True)
        assert t is not None and t.refund_no == "RFt-1"
        t.refund_failed("RFt-1", RefundFailure.CLOSED, "closed by the provider", T0 + 2 * HOUR)
        t.retry_refund(T0 + 3 * HOUR)
        await uow.tickets.save(t, None)
        await uow.refunds.add(t, "agent-2", T0 + 3 * HOUR)
        await uow.commit()
    async with new_uow() as uow:
        current = await uow.tickets.by_refund_no("RFt-1_2")
        earlier = await uow.tickets.by_refund_no("RFt-1")
        assert current is not None and current.refund_no == "RFt-1_2" and current.refund_attempt == 2
        assert earlier == current
        assert await uow.tickets.by_refund_no("RFt-404") is None
        assert await uow.tickets.by_refund_no("") is None


async def test_due_tickets_are_shared_out_between_sweeps_running_together(new_uow: NewUow) -> None:
    late = [ticket(order(order_id=f"o-{n}"), ticket_id=f"t-{n}", at=T0 + n * HOUR) for n in range(3)]
    answered = ticket(order(order_id="o-9"), ticket_id="t-9")
    answered.approve("agent-1", T0 + HOUR)
    not_yet = ticket(order(order_id="o-8"), ticket_id="t-8", at=T0 + 40 * HOUR)
    await add(new_uow, *late, answered, not_yet)
    now = T0 + 60 * HOUR
    async with new_uow() as first, new_uow() as second:
        mine = await first.tickets.due(now, 2)
        # the second sweep does not wait for the first's rows: it skips them
        theirs = await asyncio.wait_for(second.tickets.due(now, 10), 5)
        assert [t.ticket_id for t in mine] == ["t-0", "t-1"]
        assert [t.ticket_id for t in theirs] == ["t-2"]
        for t in mine:
            assert t.apply_sla(now)
            await first.tickets.save(t, t.next_deadline())
        await first.commit()
    async with new_uow() as uow:
        # flagged: their next deadline is the escalation's (72 h after opening); t-2 was not swept
        assert [t.ticket_id for t in await uow.tickets.due(now, 10)] == ["t-2"]
        assert [t.ticket_id for t in await uow.tickets.due(T0 + 72 * HOUR, 10)] == ["t-2", "t-0"]
        flagged = await uow.tickets.get("t-1")
        assert flagged is not None and flagged.flagged_at == now


async def test_lists_page_newest_first_with_every_filter(new_uow: NewUow) -> None:
    def opened(n: int, customer: str, channel: str, reason: Reason = Reason.SIZE_FIT) -> Ticket:
        snapshot = dataclasses.replace(order(order_id=f"o-{n % 3}", channel=channel), customer_id=customer)
        return ticket(snapshot, ticket_id=f"t-{n}", at=T0 + n * HOUR, reason=reason)

    tickets = [
        opened(n, f"c-{n % 2}", "TAOBAO" if n < 3 else "OWN_SHOP", list(Reason)[n // 3]) for n in range(7)
    ]
    await add(new_uow, *tickets)
    async with new_uow() as uow:
        t5 = await uow.tickets.get("t-5")
        assert t5 is not None
        t5.approve("agent-1", T0 + 6 * HOUR)
        await uow.tickets.save(t5, t5.next_deadline())
        t2 = await uow.tickets.get("t-2")
        assert t2 is not None
        assert t2.apply_sla(T0 + 50 * HOUR)
        await uow.tickets.save(t2, t2.next_deadline())
        await uow.commit()
    now = T0 + 49 * HOUR + 30 * timedelta(minutes=1)

    async def ids(where: TicketFilter, size: int = 2, at: object = now) -> list[str]:
        found: list[str] = []
        token = ""
        async with new_uow() as uow:
            while True:
                page, token = await uow.tickets.page(where, at, size, token)  # type: ignore[arg-type]
                assert len(page) <= size
                found += [t.ticket_id for t in page]
                if not token:
                    return found

    everything = [f"t-{n}" for n in range(6, -1, -1)]
    assert await ids(TicketFilter()) == everything
    assert await ids(TicketFilter(), size=500) == everything
    assert await ids(TicketFilter(order_id="o-1")) == ["t-4", "t-1"]
    assert await ids(TicketFilter(customer_id="c-0")) == ["t-6", "t-4", "t-2", "t-0"]
    assert await ids(TicketFilter(customers=frozenset({"c-1", "c-7"}))) == ["t-5", "t-3", "t-1"]
    assert await ids(TicketFilter(customers=frozenset())) == []
    assert await ids(TicketFilter(channel="TAOBAO")) == ["t-2", "t-1", "t-0"]
    assert await ids(TicketFilter(status="APPROVED")) == ["t-5"]
    assert await ids(TicketFilter(channel="OWN_SHOP", customer_id="c-1")) == ["t-5", "t-3"]
    # overdue: t-2 was flagged; t-0 and t-1 are past their 48 h and not swept yet; t-5 was answered
    assert await ids(TicketFilter(overdue_only=True)) == ["t-2", "t-1", "t-0"]
    assert await ids(TicketFilter(overdue_only=True), at=T0 + 55 * HOUR) == [
        "t-6", "t-4", "t-3", "t-2", "t-1", "t-0"
    ]  # fmt: skip
    async with new_uow() as uow:
        # the use cases name their request's field (a ValueError is a bad token to them)
        with pytest.raises(BadToken):
            await uow.tickets.page(TicketFilter(), now, 2, "not-a-token")
        with pytest.raises(ValueError, match="at least one row"):
            await uow.tickets.page(TicketFilter(), now, 0, "")


async def test_the_tickets_the_rules_decided_are_kept_for_dry_runs(new_uow: NewUow) -> None:
    approved = refund_only("t-1", "o-1", lines=[(2, 1)], reason=Reason.DAMAGED)
    approved.decide(evaluate(default_rule_set(), approved.facts(), T0 + HOUR), T0 + HOUR)
    review = ticket(order(order_id="o-2"), [(0, 2)], ticket_id="t-2", at=T0 + 2 * HOUR)
    review.decide(evaluate(default_rule_set(), review.facts(), T0 + 2 * HOUR), T0 + 2 * HOUR)
    review.approve("agent-1", T0 + 9 * HOUR)
    by_hand = ticket(order(order_id="o-3"), ticket_id="t-3")
    by_hand.approve("agent-1", T0 + 3 * HOUR)
    assert approved.status is S.APPROVED and review.decision is not None and not review.decision.approved
    await add(new_uow, approved, review, by_hand)
    async with new_uow() as uow:
        past = await uow.tickets.decided(10)
        assert [(p.facts.ticket_id, p.decided_at) for p in past] == [
            ("t-2", T0 + 2 * HOUR),
            ("t-1", T0 + HOUR),
        ]
        assert past[1].facts == approved.facts()
        assert [p.facts.ticket_id for p in await uow.tickets.decided(1)] == ["t-2"]


async def test_one_order_s_ticket_operations_wait_for_each_other(new_uow: NewUow) -> None:
    async with new_uow() as first, new_uow() as second, new_uow() as other:
        await first.tickets.lock_order("o-1")
        await asyncio.wait_for(other.tickets.lock_order("o-2"), 5)
        waiting = asyncio.ensure_future(second.tickets.lock_order("o-1"))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await first.commit()
        await asyncio.wait_for(waiting, 5)


async def test_emitted_events_are_written_to_the_outbox_with_the_change(new_uow: NewUow) -> None:
    opened = ticket()
    async with new_uow() as uow:
        await uow.tickets.add(opened, "", None)
        for event in opened.events:
            uow.emit(event)
    async with new_uow() as uow:
        assert await uow.conn.scalar(text("SELECT count(*) FROM outbox")) == 0
        assert await uow.tickets.get("t-1") is None
    async with new_uow() as uow:
        await uow.tickets.add(opened, "", None)
        for event in opened.events:
            uow.emit(event)
        await uow.commit()
    async with new_uow() as uow:
        rows = (await uow.conn.execute(text("SELECT subject, payload FROM outbox ORDER BY id"))).all()
    assert [row.subject for row in rows] == [
        "test.aftersales.TicketOpened",
        "test.aftersales.RetentionSuggested",
    ]
    assert all(b"t-1" in row.payload for row in rows)


async def test_a_unit_of_work_without_an_encoder_cannot_emit(engine: object, clock: object) -> None:
    async with AftersalesUnitOfWork(engine, clock) as uow:  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="without event messages"):
            uow.emit(ticket().events[0])


async def test_a_joined_unit_of_work_writes_in_its_owner_s_transaction(new_uow: NewUow) -> None:
    owner = new_uow()
    async with owner:
        joined = AftersalesUnitOfWork.joined(owner.conn, owner.clock, encode_event)
        opened = ticket()
        await joined.tickets.add(opened, "", None)
        joined.emit(opened.events[0])
        await joined.flush_events()
        await owner.commit()
    async with new_uow() as uow:
        assert await uow.tickets.get("t-1") == opened
        assert await uow.conn.scalar(text("SELECT count(*) FROM outbox")) == 1


async def test_an_exchange_is_found_by_its_replacement_order_and_by_nothing_else(new_uow: NewUow) -> None:
    exchange = ticket(order(order_id="o-ex"), ticket_id="t-ex", kind=K.EXCHANGE)  # type: ignore[arg-type]
    other = refund_only("t-other", "o-other")
    await add(new_uow, exchange, other)
    async with new_uow() as uow:
        assert await uow.tickets.by_replacement("order-EXt-ex") is None, "not placed yet"
        assert await uow.tickets.by_replacement("") is None
        read = await uow.tickets.get("t-ex", lock=True)
        assert read is not None
        read.replacement_shipment_id = "order-EXt-ex"
        await uow.tickets.save(read, read.next_deadline())
        await uow.commit()
    async with new_uow() as uow:
        found = await uow.tickets.by_replacement("order-EXt-ex", lock=True)
        assert found is not None and found.ticket_id == "t-ex"
        assert await uow.tickets.by_replacement("o-other") is None
        indexes = (
            (await uow.conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'tickets'")))
            .scalars()
            .all()
        )
    assert "tickets_by_replacement" in indexes, "the lookup is by index, not a scan of every ticket"
