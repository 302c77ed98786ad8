"""After-sales' use cases on the fake unit of work: opening decided by the rules, a person's decision,
scope, the return desk, refunds sent once and settled by answer or notification, failures alerted and
freeing their units, the SLA sweep, rule set versions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.aftersales import handlers
from services.aftersales.domain.approval import DEFAULT_DOCUMENT
from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.events import (
    AlertRaised,
    Refunded,
    RefundFailed,
    RefundRequested,
    TicketApproved,
)
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.reasons import Reason
from services.aftersales.handlers.ports import ProviderAnswer, TicketFilter
from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.aftersales.builders import T0, command, order
from tests.unit.aftersales.fakes import FakeInventory, FakeOrders, FakeUnitOfWork, ScriptedProviders, State

S = TicketStatus
POLICY = handlers.Policy()


class World:
    def __init__(self, *orders: object) -> None:
        self.state = State()
        self.clock = FixedClock(T0)
        self.orders = FakeOrders(*(orders or (order(),)))  # type: ignore[arg-type]

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.state, self.clock)

    async def open(self, scope: handlers.Scope = handlers.EVERYONE, request_id: str = "", **kwargs: object):  # type: ignore[no-untyped-def]
        snapshot = kwargs.pop("snapshot", None) or next(iter(self.orders.orders.values()))
        return await handlers.open_new(
            self.uow(),
            self.orders,
            POLICY,
            command(snapshot, **kwargs),
            request_id,
            scope,  # type: ignore[arg-type]
        )

    def published(self, kind: type) -> list[object]:
        return [event for event in self.state.published if isinstance(event, kind)]

    def ticket(self, ticket_id: str = "t-1"):  # type: ignore[no-untyped-def]
        return self.state.tickets[ticket_id][0]


async def test_a_small_refund_only_ticket_is_approved_by_the_rules_and_its_refund_queued_at_once() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.REFUND_ONLY)
    assert ticket.status is S.REFUND_REQUESTED
    approved = world.published(TicketApproved)
    assert len(approved) == 1 and approved[0].rule_set_version == 1  # type: ignore[attr-defined]
    assert all(check.held for check in approved[0].conditions)  # type: ignore[attr-defined]
    job = world.state.refunds[ticket.refund_no]["job"]
    assert (job.refund_no, job.cash_minor) == (f"RF{ticket.ticket_id}", ticket.voucher.cash_minor)  # type: ignore[attr-defined]
    assert world.state.claims[("o-1", 0, "units")] == [2, 1]
    assert len(world.published(RefundRequested)) == 1


async def test_a_damaged_item_waits_for_a_person_then_an_agent_approves_it() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.REFUND_ONLY, damage_reported=True, reason=Reason.DAMAGED)
    assert ticket.status is S.OPEN and ticket.decision is not None and not ticket.decision.approved
    assert world.state.refunds == {}
    listed, _ = await handlers.list_tickets(
        world.uow(), TicketFilter(status="OPEN"), handlers.EVERYONE, 10, ""
    )
    assert [t.ticket_id for t in listed] == ["t-1"], "in the review queue"
    decided = await handlers.decide(world.uow(), POLICY, "t-1", True, "agent-7", "", handlers.EVERYONE)
    assert decided.status is S.REFUND_REQUESTED and decided.answered_by == "agent-7"
    assert world.state.refunds[decided.refund_no]["approved_by"] == "agent-7"


async def test_a_rejection_needs_its_reason_and_changes_nothing_without_it() -> None:
    world = World()
    await world.open(kind=TicketKind.REFUND_ONLY, damage_reported=True, reason=Reason.DAMAGED)
    with pytest.raises(InvalidArgument) as refused:
        await handlers.decide(world.uow(), POLICY, "t-1", False, "agent-7", "  ", handlers.EVERYONE)
    assert refused.value.field == "reason"
    assert world.ticket().status is S.OPEN
    rejected = await handlers.decide(
        world.uow(), POLICY, "t-1", False, "agent-7", "used item", handlers.EVERYONE
    )
    assert rejected.status is S.REJECTED and rejected.rejection_note == "used item"


async def test_a_customer_sees_only_their_own_tickets_and_another_ones_reads_as_unknown() -> None:
    world = World()
    await world.open(kind=TicketKind.REFUND_ONLY)
    mine = handlers.Scope(customer_id="c-1")
    theirs = handlers.Scope(customer_id="c-2")
    assert (await handlers.get_ticket(world.uow(), "t-1", mine)).ticket_id == "t-1"
    with pytest.raises(NotFound) as hidden:
        await handlers.get_ticket(world.uow(), "t-1", theirs)
    with pytest.raises(NotFound) as unknown:
        await handlers.get_ticket(world.uow(), "t-9", theirs)
    assert str(hidden.value).replace("t-1", "x") == str(unknown.value).replace("t-9", "x")
    assert (await handlers.list_tickets(world.uow(), TicketFilter(), theirs, 10, ""))[0] == []
    agent = handlers.Scope(agent_id="a-1", customers=frozenset({"c-9"}))
    assert (await handlers.list_tickets(world.uow(), TicketFilter(), agent, 10, ""))[0] == []
    with pytest.raises(NotFound):
        await handlers.decide(world.uow(), POLICY, "t-1", True, "a-1", "", agent)


async def test_the_same_request_id_answers_the_first_ticket() -> None:
    world = World()
    first = await world.open(kind=TicketKind.REFUND_ONLY, request_id="req-1")
    again = await world.open(kind=TicketKind.REFUND_ONLY, request_id="req-1", ticket_id="t-2")
    assert again.ticket_id == first.ticket_id and list(world.state.tickets) == ["t-1"]


async def test_two_tickets_can_never_claim_more_units_than_were_paid() -> None:
    world = World()
    await world.open(kind=TicketKind.REFUND_ONLY, lines=((0, 2),))
    with pytest.raises(FailedPrecondition):
        await world.open(
            kind=TicketKind.REFUND_ONLY, lines=((0, 1),), reason=Reason.CHANGED_MIND, ticket_id="t-2"
        )
    assert list(world.state.tickets) == ["t-1"], "nothing written"


async def test_the_return_desk_restocks_intact_units_and_the_refund_follows() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.RETURN_AND_REFUND, lines=((2, 3),))
    assert ticket.status is S.APPROVED
    lines = [ReceivedLine(2, 3, damaged=1)]
    received, restocked = await handlers.receive_return(world.uow(), POLICY, " o-1 ", "WH-SH", lines)
    assert (received.status, restocked) == (S.REFUND_REQUESTED, 2)
    job = world.state.restocks[f"RT{ticket.ticket_id}"]["job"]
    assert (job.warehouse_id, job.lines) == ("WH-SH", (("SKU-2", 2),))  # type: ignore[attr-defined]
    again, again_restocked = await handlers.receive_return(world.uow(), POLICY, "o-1", "WH-SH", lines)
    assert again.status is S.REFUND_REQUESTED and again_restocked == 2 and len(world.state.restocks) == 1
    inventory = FakeInventory(down=1)
    runner = handlers.RestockRunner(world.uow, inventory, POLICY)
    assert await runner.run_due() == 0, "inventory down: waits"
    world.clock.advance(timedelta(minutes=1))
    assert await runner.run_due() == 1 and inventory.restocked[0].return_id == f"RT{ticket.ticket_id}"
    world.clock.advance(timedelta(hours=1))
    assert await runner.run_due() == 0, "restocked once"


async def test_a_return_for_a_code_with_nothing_waiting_is_refused() -> None:
    world = World()
    with pytest.raises(NotFound):
        await handlers.receive_return(world.uow(), POLICY, "o-1", "WH-SH", [ReceivedLine(0, 2)])
    await world.open(kind=TicketKind.REFUND_ONLY)
    with pytest.raises(FailedPrecondition):
        await handlers.receive_return(world.uow(), POLICY, "o-1", "WH-SH", [ReceivedLine(0, 2)])
    with pytest.raises(InvalidArgument) as missing:
        await handlers.receive_return(world.uow(), POLICY, "  ", "WH-SH", [ReceivedLine(0, 1)])
    assert missing.value.field == "order_code"


async def test_a_refund_whose_answer_was_lost_is_sent_again_with_the_same_number_then_settles_once() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.REFUND_ONLY)
    providers = ScriptedProviders(ProviderAnswer("SENDING", detail="timeout", retry=True))
    runner = handlers.RefundRunner(world.uow, providers, POLICY)
    assert await runner.run_due() == 1
    assert world.ticket().status is S.REFUND_REQUESTED
    world.clock.advance(POLICY.retry_delay(1))
    await runner.run_due()
    assert [job.refund_no for job in providers.sent] == [ticket.refund_no] * 2, (
        "identical, never a new number"
    )
    done = world.ticket()
    assert done.status is S.CLOSED and done.refunded_at is not None and done.provider_refund_id == "502"
    assert len(world.published(Refunded)) == 1
    world.clock.advance(timedelta(hours=1))
    assert await runner.run_due() == 0, "settled: nothing is sent again"


async def test_a_processing_refund_is_asked_after_and_a_late_duplicate_notification_changes_nothing() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.REFUND_ONLY)
    providers = ScriptedProviders(
        ProviderAnswer("PROCESSING", "5001"), queries=[ProviderAnswer("PROCESSING", "5001")]
    )
    runner = handlers.RefundRunner(world.uow, providers, POLICY)
    await runner.run_due()
    world.clock.advance(POLICY.query_every)
    await runner.run_due()
    assert len(providers.asked) == 1 and world.ticket().status is S.REFUND_REQUESTED
    provider = handlers.Scope(provider="wechat_pay")
    settled, news = await handlers.report_refund(
        world.uow(), POLICY, ticket.refund_no, "SUCCESS", "5001", provider
    )
    assert news and settled.status is S.CLOSED
    _again, news_again = await handlers.report_refund(
        world.uow(), POLICY, ticket.refund_no, "SUCCESS", "5001", provider
    )
    assert not news_again and len(world.published(Refunded)) == 1
    with pytest.raises(NotFound):
        await handlers.report_refund(
            world.uow(), POLICY, ticket.refund_no, "SUCCESS", "5001", handlers.Scope(provider="alipay")
        )


async def test_a_closed_refund_is_alerted_frees_its_units_and_is_never_sent_again_by_itself() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.REFUND_ONLY)
    runner = handlers.RefundRunner(
        world.uow, ScriptedProviders(ProviderAnswer("CLOSED", "5001", "closed")), POLICY
    )
    await runner.run_due()
    failed = world.ticket()
    assert failed.status is S.REFUND_FAILED
    assert [type(e) for e in world.state.published[-2:]] == [RefundFailed, AlertRaised]
    alert = world.published(AlertRaised)[0]
    assert alert.kind == "refund_failed" and "finance" in alert.roles  # type: ignore[attr-defined]
    assert world.state.claims[("o-1", 0, "units")] == [2, 0], "no money moved: the units are free"
    world.clock.advance(timedelta(hours=1))
    assert await runner.run_due() == 0
    retried = await handlers.retry_refund(world.uow(), POLICY, "t-1", "supervisor-1", handlers.EVERYONE)
    assert retried.refund_no == f"RF{ticket.ticket_id}_2" and retried.status is S.REFUND_REQUESTED


async def test_the_sla_sweep_flags_at_48_hours_escalates_at_72_with_an_alert_and_only_once() -> None:
    world = World()
    await world.open(kind=TicketKind.REFUND_ONLY, damage_reported=True, reason=Reason.DAMAGED)
    world.clock.advance(timedelta(hours=47, minutes=59))
    assert await handlers.sweep(world.uow(), POLICY) == 0
    world.clock.advance(timedelta(minutes=1))
    assert await handlers.sweep(world.uow(), POLICY) == 1
    assert world.ticket().flagged_at == world.clock.now()
    assert await handlers.sweep(world.uow(), POLICY) == 0, "flagged once"
    world.clock.advance(timedelta(hours=24))
    assert await handlers.sweep(world.uow(), POLICY) == 1
    alerts = world.published(AlertRaised)
    assert [a.kind for a in alerts] == ["ticket_escalated"] and alerts[0].roles == ("supervisor",)  # type: ignore[attr-defined]
    world.clock.advance(timedelta(hours=24))
    assert await handlers.sweep(world.uow(), POLICY) == 0 and len(world.published(AlertRaised)) == 1


async def test_a_rule_set_is_drafted_dry_run_and_activated_and_then_decides() -> None:
    world = World()
    await world.open(kind=TicketKind.REFUND_ONLY)
    strict = {"rules": [{"name": "nothing", "conditions": {"max_amount_minor": 0}, "outcome": "APPROVE"}]}
    drafted = await handlers.put_draft(world.uow(), strict, "stricter", "sup-1")
    result = await handlers.dry_run(world.uow(), drafted.version, 0)
    assert (result.replayed, len(result.changed), result.no_longer_approved) == (1, 1, 1)
    with pytest.raises(InvalidArgument) as bad:
        await handlers.put_draft(
            world.uow(), {"rules": [{"name": "x", "conditions": {"max_amount_minor": -1}}]}, "", "s"
        )
    assert "max_amount_minor" in bad.value.field
    await handlers.activate(world.uow(), drafted.version)
    ticket = await world.open(
        kind=TicketKind.REFUND_ONLY, reason=Reason.CHANGED_MIND, ticket_id="t-2", lines=((1, 1),)
    )
    assert (
        ticket.status is S.OPEN
        and ticket.decision is not None
        and ticket.decision.rule_set_version == drafted.version
    )
    with pytest.raises(NotFound):
        await handlers.activate(world.uow(), 99)
    assert DEFAULT_DOCUMENT["rules"]


async def test_an_exchange_received_has_its_replacement_placed_once_and_restocks_what_is_intact() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.EXCHANGE, lines=((0, 2),), reason=Reason.DAMAGED)
    await handlers.decide(world.uow(), POLICY, ticket.ticket_id, True, "agent-1", "", handlers.EVERYONE)
    lines = [ReceivedLine(0, 2, damaged=1)]
    received, restocked = await handlers.receive_return(world.uow(), POLICY, "o-1", "WH-SH", lines)
    assert (received.status, restocked) == (S.RETURN_RECEIVED, 1)
    assert world.state.refunds == {}, "an exchange pays nothing back"
    inventory = FakeInventory()
    runner = handlers.RestockRunner(world.uow, inventory, POLICY, orders=world.orders)
    assert await runner.run_due() == 2
    replacement = world.orders.placed[f"EX{ticket.ticket_id}"]
    assert (replacement.kind, replacement.lines) == ("replacement", (("SKU-0", 2),)), "both units again"
    assert [job.lines for job in inventory.restocked] == [(("SKU-0", 1),)], "only the intact unit"
    shipped = world.ticket()
    assert (shipped.status, shipped.replacement_shipment_id) == (
        S.REPLACEMENT_SHIPPED,
        f"order-EX{ticket.ticket_id}",
    )
    world.clock.advance(timedelta(hours=2))
    assert await runner.run_due() == 0, "placed once"


async def replaced(world: World) -> str:
    """An exchange whose replacement order is on its way; its order id."""
    ticket = await world.open(kind=TicketKind.EXCHANGE, lines=((0, 2),), reason=Reason.DAMAGED)
    await handlers.decide(world.uow(), POLICY, ticket.ticket_id, True, "agent-1", "", handlers.EVERYONE)
    await handlers.receive_return(world.uow(), POLICY, "o-1", "WH-SH", [ReceivedLine(0, 2)])
    runner = handlers.RestockRunner(world.uow, FakeInventory(), POLICY, orders=world.orders)
    await runner.run_due()
    assert world.ticket().status is S.REPLACEMENT_SHIPPED
    return str(world.ticket().replacement_shipment_id)


async def ended(world: World, order_id: str, delivered: bool, reason: str, at: object) -> bool:
    """As the consumer runs it: inside the inbox transaction, which it then commits."""
    uow = world.uow()
    async with uow:
        changed = await handlers.replacement_ended(uow, POLICY, order_id, delivered, reason, at)  # type: ignore[arg-type]
        await uow.commit()
    return changed


async def test_an_exchange_closes_when_its_replacement_order_is_delivered_and_only_then() -> None:
    world = World()
    replacement = await replaced(world)
    at = T0 + timedelta(days=2)
    assert not await ended(world, "o-other", True, "", at)
    assert world.ticket().status is S.REPLACEMENT_SHIPPED, "another order's delivery changes nothing"
    assert await ended(world, replacement, True, "delivered", at)
    closed = world.ticket()
    assert (closed.status, closed.closed_by, closed.replacement_delivered_at) == (S.CLOSED, "orders", at)
    assert closed.close_note == f"replacement order {replacement} delivered"
    assert not await ended(world, replacement, True, "", at), "once"


async def test_a_cancelled_replacement_leaves_the_exchange_for_a_person_with_one_alert() -> None:
    world = World()
    replacement = await replaced(world)
    at = T0 + timedelta(days=1)
    assert await ended(world, replacement, False, "out of stock", at)
    assert not await ended(world, replacement, False, "out of stock", at)
    waiting = world.ticket()
    assert waiting.status is S.REPLACEMENT_SHIPPED
    assert waiting.replacement_problem == f"replacement order {replacement} cancelled: out of stock"
    [alert] = [a for a in world.published(AlertRaised) if a.kind == "exchange_replacement_cancelled"]  # type: ignore[attr-defined]
    assert alert.roles == ("supervisor", "cs_lead") and replacement in alert.message  # type: ignore[attr-defined]


async def test_a_note_goes_on_the_tickets_log_in_order_and_answers_nothing() -> None:
    world = World()
    ticket = await world.open(kind=TicketKind.EXCHANGE, lines=((0, 2),), reason=Reason.DAMAGED)
    assert ticket.status is S.OPEN
    await handlers.add_note(world.uow(), POLICY, ticket.ticket_id, "buyer-1", " 尺码偏小 ", handlers.EVERYONE)
    world.clock.advance(timedelta(minutes=5))
    noted = await handlers.add_note(
        world.uow(), POLICY, ticket.ticket_id, "agent-1", "called back", handlers.EVERYONE
    )
    assert [(n.by, n.text) for n in noted.notes] == [("buyer-1", "尺码偏小"), ("agent-1", "called back")]
    assert world.ticket().notes == noted.notes
    assert (noted.status, noted.answered_at) == (S.OPEN, None), "a note is no answer"
    for text, problem in (("   ", "text"), ("x" * 501, "text")):
        with pytest.raises(InvalidArgument) as refused:
            await handlers.add_note(world.uow(), POLICY, ticket.ticket_id, "agent-1", text, handlers.EVERYONE)
        assert refused.value.field == problem
    assert len(world.ticket().notes) == 2, "a refused note writes nothing"
    with pytest.raises(NotFound):
        await handlers.add_note(world.uow(), POLICY, "t-404", "agent-1", "hello", handlers.EVERYONE)
