"""The use cases on the real store (the fakes stand in only for orders and the providers): what the
handlers were written against holds on Postgres, with the mappers' encoder writing the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aftersales import handlers, mappers
from services.aftersales.domain.commands import OpenTicket
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.reasons import Reason
from services.aftersales.handlers.ports import ProviderAnswer, TicketFilter
from services.aftersales.store.uow import AftersalesUnitOfWork
from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition
from tests.unit.aftersales.builders import command, order
from tests.unit.aftersales.fakes import FakeOrders, ScriptedProviders

pytestmark = pytest.mark.timeout(60)
S = TicketStatus
POLICY = handlers.Policy()


@pytest.fixture
def world(engine: AsyncEngine, clock: FixedClock) -> Callable[[], AftersalesUnitOfWork]:
    """Units of work as the bootstrap makes them (the mappers' encoder), on the test's clock."""
    return lambda: AftersalesUnitOfWork(engine, clock, mappers.event_message)


async def subjects(new_uow: Callable[[], AftersalesUnitOfWork]) -> list[str]:
    async with new_uow() as uow:
        rows = await uow.conn.execute(text("SELECT subject FROM outbox ORDER BY id"))
        return [str(row.subject).rsplit(".", 1)[-1] for row in rows]


async def test_a_refund_approved_by_the_rules_is_sent_once_and_settles_the_ticket(
    world: Callable[[], AftersalesUnitOfWork], clock: FixedClock
) -> None:
    snapshot = order()
    orders = FakeOrders(snapshot)
    opening = command(snapshot, [(2, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED)
    opened = await handlers.open_new(world(), orders, POLICY, opening, "req-1", handlers.EVERYONE)
    assert opened.status is S.REFUND_REQUESTED
    again = await handlers.open_new(world(), orders, POLICY, opening, "req-1", handlers.EVERYONE)
    assert again == opened
    providers = ScriptedProviders(ProviderAnswer("SENDING", retry=True, detail="timeout"))
    runner = handlers.RefundRunner(world, providers, POLICY)
    assert await runner.run_due() == 1
    assert await runner.run_due() == 0  # the retry waits for its delay
    clock.advance(POLICY.retry_delays[0])
    assert await runner.run_due() == 1
    assert [job.refund_no for job in providers.sent] == ["RFt-1", "RFt-1"]
    assert [job.status for job in providers.sent] == ["PENDING", "SENDING"]
    ticket = await handlers.get_ticket(world(), "t-1", handlers.EVERYONE)
    assert ticket.status is S.CLOSED and ticket.refunded_at is not None
    # the provider's notification of the same refund afterwards is old news
    _, news = await handlers.report_refund(world(), POLICY, "RFt-1", "SUCCESS", "502", handlers.EVERYONE)
    assert news is False
    rows, _ = await handlers.refund_ledger(world(), None, None, 10, "")
    assert [(row["out_refund_no"], row["status"]) for row in rows] == [("RFt-1", "SUCCESS")]
    assert rows[0]["cash"] == opened.voucher.cash_minor  # type: ignore[union-attr]
    listed, _ = await handlers.list_tickets(world(), TicketFilter(status="CLOSED"), handlers.EVERYONE, 10, "")
    assert [t.ticket_id for t in listed] == ["t-1"]
    assert await subjects(world) == ["opened", "approved", "refund_requested", "refunded", "closed"]


async def test_a_closed_refund_frees_its_units_and_a_person_s_new_attempt_takes_them_again(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshot = order()
    orders = FakeOrders(snapshot)
    opening = command(snapshot, [(2, 3)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED)
    await handlers.open_new(world(), orders, POLICY, opening, "", handlers.EVERYONE)
    runner = handlers.RefundRunner(world, ScriptedProviders(ProviderAnswer("CLOSED", "501")), POLICY)
    assert await runner.run_due() == 1
    async with world() as uow:
        units = await uow.conn.scalar(
            text("SELECT claimed FROM line_claims WHERE line_index = 2 AND bucket = 'units'")
        )
        assert units == 0
    ticket = await handlers.retry_refund(world(), POLICY, "t-1", "supervisor-1", handlers.EVERYONE)
    assert ticket.refund_no == "RFt-1_2" and ticket.status is S.REFUND_REQUESTED
    assert await handlers.RefundRunner(world, ScriptedProviders(), POLICY).run_due() == 1
    rows, _ = await handlers.refund_ledger(world(), None, None, 10, "")
    assert sorted((row["out_refund_no"], row["status"]) for row in rows) == [
        ("RFt-1", "CLOSED"),
        ("RFt-1_2", "SUCCESS"),
    ]
    # a late word on the first attempt finds the ticket and changes nothing
    _, news = await handlers.report_refund(world(), POLICY, "RFt-1", "CLOSED", "501", handlers.EVERYONE)
    assert news is False
    async with world() as uow:
        units = await uow.conn.scalar(
            text("SELECT claimed FROM line_claims WHERE line_index = 2 AND bucket = 'units'")
        )
        assert units == 3


async def test_the_same_request_sent_twice_at_once_opens_one_ticket(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshot = order()
    orders = FakeOrders(snapshot)
    first = command(snapshot, [(0, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED, ticket_id="t-a")
    second = command(snapshot, [(0, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED, ticket_id="t-b")
    opened = await asyncio.gather(
        handlers.open_new(world(), orders, POLICY, first, "req-twice", handlers.EVERYONE),
        handlers.open_new(world(), orders, POLICY, second, "req-twice", handlers.EVERYONE),
    )
    assert opened[0].ticket_id == opened[1].ticket_id
    listed, _ = await handlers.list_tickets(
        world(), TicketFilter(order_id=snapshot.order_id), handlers.EVERYONE, 10, ""
    )
    assert len(listed) == 1
    assert (await subjects(world)).count("opened") == 1


async def test_two_tickets_approved_at_the_same_moment_never_refund_more_than_was_paid(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshot = order()  # line 0: 2 units
    orders = FakeOrders(snapshot)
    waiting = [
        command(
            snapshot,
            [(0, 1)],
            kind=TicketKind.REFUND_ONLY,
            reason=reason,
            ticket_id=f"t-{n}",
            damage_reported=True,
        )
        for n, reason in enumerate((Reason.DAMAGED, Reason.QUALITY_ISSUE))
    ]
    for opening in waiting:
        ticket = await handlers.open_new(world(), orders, POLICY, opening, "", handlers.EVERYONE)
        assert ticket.status is S.OPEN, "damage reported: for a person"
    third = command(
        snapshot, [(0, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.WRONG_ITEM, ticket_id="t-3"
    )
    with pytest.raises(FailedPrecondition):
        await handlers.open_new(world(), orders, POLICY, third, "", handlers.EVERYONE)
    decided = await asyncio.gather(
        *(
            handlers.decide(world(), POLICY, f"t-{n}", True, "agent-1", "", handlers.EVERYONE)
            for n in range(2)
        ),
        return_exceptions=True,
    )
    assert all(not isinstance(result, Exception) for result in decided), decided
    async with world() as uow:
        claimed = await uow.conn.execute(
            text("SELECT bucket, paid, claimed FROM line_claims WHERE order_id = :o AND line_index = 0"),
            {"o": snapshot.order_id},
        )
        rows = {row.bucket: (row.paid, row.claimed) for row in claimed}
    assert rows["units"] == (2, 2), rows
    assert all(claimed <= paid for paid, claimed in rows.values()), rows


async def opened_together(
    opener: handlers.TicketOpener, openings: list[tuple[OpenTicket, str]]
) -> list[object]:
    """Every opening submitted at the same moment; each one's ticket or error."""
    return await asyncio.gather(
        *(opener.open(opening, request_id, handlers.EVERYONE) for opening, request_id in openings),
        return_exceptions=True,
    )


async def test_tickets_opened_at_the_same_moment_are_written_together_each_as_alone(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshots = [order(order_id=f"o-{n}") for n in range(6)]
    opener = handlers.TicketOpener(world, FakeOrders(*snapshots), POLICY, in_flight=1)
    openings = [
        (
            command(s, [(2, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED, ticket_id=f"t-{n}"),
            f"req-{n}",
        )
        for n, s in enumerate(snapshots)
    ]
    results = await opened_together(opener, openings)
    assert [getattr(r, "ticket_id", r) for r in results] == [f"t-{n}" for n in range(6)]
    assert all(getattr(r, "status", None) is S.REFUND_REQUESTED for r in results)
    # submitted at the same moment: one transaction for the six
    assert opener.batches == 1
    async with world() as uow:
        claimed = await uow.conn.execute(
            text("SELECT order_id, claimed FROM line_claims WHERE bucket = 'units' ORDER BY order_id")
        )
        assert [(row.order_id, row.claimed) for row in claimed] == [(f"o-{n}", 1) for n in range(6)]
        queued = await uow.conn.scalar(text("SELECT count(*) FROM refunds WHERE status = 'PENDING'"))
        assert queued == 6
        # written by one transaction
        assert await uow.conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM tickets")) == 1
    assert await subjects(world) == ["opened", "approved", "refund_requested"] * 6
    # the same requests again, together: each answers its first ticket and writes nothing
    again = await opened_together(opener, openings)
    assert [getattr(r, "ticket_id", r) for r in again] == [f"t-{n}" for n in range(6)]
    assert len(await subjects(world)) == 18


async def test_one_refused_opening_of_a_batch_meets_its_error_and_the_others_open(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshots = [order(order_id=f"o-{n}") for n in range(4)]
    opener = handlers.TicketOpener(world, FakeOrders(*snapshots), POLICY, in_flight=1)
    # o-2 has a ticket for the reason already: its second is refused by the database's index
    taken = command(snapshots[2], [(0, 1)], reason=Reason.DAMAGED, ticket_id="t-first")
    await handlers.open_new(world(), FakeOrders(*snapshots), POLICY, taken, "", handlers.EVERYONE)
    openings = [
        (command(s, [(0, 1)], reason=Reason.DAMAGED, ticket_id=f"t-{n}"), "") for n, s in enumerate(snapshots)
    ]
    # together, o-0 a second time: the batch (o-0 twice) is opened one by one
    twice = (command(snapshots[0], [(0, 1)], reason=Reason.DAMAGED, ticket_id="t-0-again"), "")
    results = await opened_together(opener, [*openings, twice])
    assert [getattr(r, "ticket_id", None) for r in results] == ["t-0", "t-1", None, "t-3", None]
    for refused in (results[2], results[4]):
        assert isinstance(refused, FailedPrecondition) and "one open ticket per reason" in str(refused)
    # four different orders, o-2 refused: the batch is rolled back and each opened alone
    more = [
        (command(s, [(1, 1)], reason=Reason.WRONG_ITEM, ticket_id=f"u-{n}"), "")
        for n, s in enumerate(snapshots)
    ]
    more[2] = (command(snapshots[2], [(0, 1)], reason=Reason.DAMAGED, ticket_id="u-2"), "")
    results = await opened_together(opener, more)
    assert [getattr(r, "ticket_id", None) for r in results] == ["u-0", "u-1", None, "u-3"]
    assert isinstance(results[2], FailedPrecondition)
    async with world() as uow:
        each = text("SELECT count(DISTINCT xmin::text) FROM tickets WHERE ticket_id LIKE 'u-%'")
        assert await uow.conn.scalar(each) == 3
    listed, _ = await handlers.list_tickets(world(), TicketFilter(), handlers.EVERYONE, 50, "")
    assert sorted(t.ticket_id for t in listed) == ["t-0", "t-1", "t-3", "t-first", "u-0", "u-1", "u-3"]
    assert (await subjects(world)).count("opened") == 7


async def test_the_providers_answers_of_one_round_are_written_together_each_on_its_own_refund(
    world: Callable[[], AftersalesUnitOfWork],
) -> None:
    snapshots = [order(order_id=f"o-{n}") for n in range(5)]
    orders = FakeOrders(*snapshots)
    for n, s in enumerate(snapshots):
        opening = command(s, [(2, 1)], kind=TicketKind.REFUND_ONLY, reason=Reason.DAMAGED, ticket_id=f"t-{n}")
        await handlers.open_new(world(), orders, POLICY, opening, "", handlers.EVERYONE)
    # refunds are sent in number order: t-0 times out, t-1 is still processing, the rest succeed
    providers = ScriptedProviders(
        ProviderAnswer("SENDING", retry=True, detail="timeout"), ProviderAnswer("PROCESSING", "5001")
    )
    runner = handlers.RefundRunner(world, providers, POLICY)
    assert await runner.run_due() == 5
    assert runner.answer_batches == 1
    async with world() as uow:
        rows = await uow.conn.execute(
            text("SELECT ticket_id, status, xmin::text AS tx FROM refunds ORDER BY ticket_id")
        )
        written = [(row.ticket_id, row.status, row.tx) for row in rows]
    assert [(ticket_id, status) for ticket_id, status, _ in written] == [
        ("t-0", "SENDING"),
        ("t-1", "PROCESSING"),
        ("t-2", "SUCCESS"),
        ("t-3", "SUCCESS"),
        ("t-4", "SUCCESS"),
    ]
    assert len({tx for *_, tx in written}) == 1, "one transaction for the round's answers"
    statuses = [(await handlers.get_ticket(world(), f"t-{n}", handlers.EVERYONE)).status for n in range(5)]
    assert statuses == [S.REFUND_REQUESTED, S.REFUND_REQUESTED, S.CLOSED, S.CLOSED, S.CLOSED]
    assert (await subjects(world)).count("refunded") == 3
