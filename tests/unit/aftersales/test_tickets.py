from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from services.aftersales.domain import lifecycle
from services.aftersales.domain.approval import default_rule_set, evaluate
from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.errors import IllegalTransition, Refused
from services.aftersales.domain.events import (
    Refunded,
    RefundFailed,
    RefundFailure,
    RefundRequested,
    ReplacementShipped,
    RetentionSuggested,
    ReturnReceived,
    TicketApproved,
    TicketClosed,
    TicketOpened,
    TicketRejected,
)
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.order_snapshot import Buckets
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import (
    claimed_by,
    open_ticket,
    order_refund_state,
    refund_no,
    refunded_so_far,
)
from services.aftersales.domain.vouchers import units_share
from services.kit.errors import FailedPrecondition, InvalidArgument
from tests.unit.aftersales.builders import T0, command, order, ticket

K, S = TicketKind, TicketStatus
LATER = T0 + timedelta(hours=1)


def kinds(events: Sequence[object]) -> list[str]:
    return [type(event).__name__ for event in events]


# ---- opening


def test_opening_keeps_the_order_as_it_was_and_records_opened_with_the_quote() -> None:
    snapshot = order()
    opened = ticket(snapshot, [(0, 1), (2, 2)], reason=Reason.DAMAGED)
    assert opened.status is S.OPEN and opened.order == snapshot
    assert opened.order.paid_minor == snapshot.paid_minor
    event = opened.events[0]
    assert isinstance(event, TicketOpened)
    assert event.quote.cash_minor == opened.quote.cash_minor > 0
    assert [(line.line_index, line.quantity) for line in event.lines] == [(0, 1), (2, 2)]
    assert kinds(opened.events) == ["TicketOpened"]


@pytest.mark.parametrize(
    ("status", "paid", "field"),
    [("CANCELLED", True, "order_id"), ("PENDING_PAYMENT", False, "order_id"), ("REFUNDED", True, "order_id")],
)
def test_a_ticket_on_a_cancelled_unpaid_or_refunded_order_is_refused_naming_the_order(
    status: str, paid: bool, field: str
) -> None:
    snapshot = order(status=status, paid_at=T0 if paid else None, delivered_at=None)
    with pytest.raises(Refused) as refused:
        ticket(snapshot, kind=K.REFUND_ONLY)
    assert refused.value.field == field


@pytest.mark.parametrize("kind", [K.RETURN_AND_REFUND, K.EXCHANGE])
def test_a_return_for_an_order_not_shipped_is_refused_naming_the_kind(kind: TicketKind) -> None:
    snapshot = order(status="ALLOCATED", delivered_at=None)
    with pytest.raises(Refused) as refused:
        ticket(snapshot, kind=kind)
    assert refused.value.field == "kind"
    assert ticket(snapshot, kind=K.REFUND_ONLY).status is S.OPEN


def test_lines_not_in_the_order_are_invalid_naming_the_line() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        ticket(order(), [(0, 1), (7, 1)])
    assert invalid.value.field == "lines[1].line_index"


def test_more_than_is_left_counting_refunds_and_other_open_tickets_is_refused_naming_the_quantity() -> None:
    first = ticket(order(), [(2, 2)], ticket_id="t-1", reason=Reason.SIZE_FIT)
    with pytest.raises(Refused) as refused:
        ticket(order(), [(2, 2)], ticket_id="t-2", reason=Reason.DAMAGED, others=[first])
    assert refused.value.field == "lines[0].quantity"
    assert ticket(order(), [(2, 1)], ticket_id="t-2", reason=Reason.DAMAGED, others=[first]).status is S.OPEN


def test_one_open_ticket_per_reason_and_another_once_the_first_is_done() -> None:
    first = ticket(order(), [(2, 1)], ticket_id="t-1")
    with pytest.raises(Refused) as refused:
        ticket(order(), [(2, 1)], ticket_id="t-2", others=[first])
    assert refused.value.field == "reason"
    first.reject("agent-1", "outside the return window", LATER)
    assert ticket(order(), [(2, 1)], ticket_id="t-2", others=[first]).status is S.OPEN


def test_a_ticket_id_that_cannot_name_a_refund_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        open_ticket(command(ticket_id="t 1/x"), T0)
    assert invalid.value.field == "ticket_id"
    with pytest.raises(InvalidArgument):
        open_ticket(command(ticket_id="x" * 60), T0)


def test_the_refund_number_is_derived_from_the_ticket_within_wechats_limit() -> None:
    ticket_id = "0190f3a2-7c1e-7b4d-9a55-3f2e1d0c9b8a"
    assert refund_no(ticket_id) == "RF" + ticket_id
    assert refund_no(ticket_id, 2) == f"RF{ticket_id}_2"
    assert len(refund_no("x" * 59, 99)) == 64


# ---- moves, kind by kind


def test_refund_only_approved_refunded_and_closed_records_each_step() -> None:
    t = ticket(kind=K.REFUND_ONLY, ticket_id="t-9", reason=Reason.NOT_AS_DESCRIBED)
    t.approve("agent-1", LATER)
    assert t.request_refund(LATER) is True
    assert t.status is S.REFUND_REQUESTED and t.refund_no == "RFt-9"
    requested = t.events[-1]
    assert isinstance(requested, RefundRequested)
    assert requested.refund_no == "RFt-9" and requested.provider == "wechat_pay"
    assert requested.voucher == t.voucher and requested.payment_total_minor == t.order.payment.amount_minor  # type: ignore[union-attr]
    # asked again after a timeout: nothing new, the same number goes out again
    assert t.request_refund(LATER) is False and t.refund_no == "RFt-9"
    assert t.refund_succeeded("RFt-9", "50300000012026", LATER) is True
    assert t.refund_succeeded("RFt-9", "50300000012026", LATER) is False
    assert t.close("agent-1", LATER) is True
    assert kinds(t.events) == [
        "TicketOpened",
        "TicketApproved",
        "RefundRequested",
        "Refunded",
        "TicketClosed",
    ]
    closed = t.events[-1]
    assert isinstance(closed, TicketClosed) and closed.refunded


def test_return_and_refund_refunds_the_units_received() -> None:
    t = ticket(order(), [(2, 3)], reason=Reason.DAMAGED, damage_reported=True)
    t.approve("agent-1", LATER)
    t.mark_return_sent("SF1234567890", LATER)
    assert t.receive_return([ReceivedLine(2, 2, damaged=1)], LATER) is True
    assert t.receive_return([ReceivedLine(2, 3)], LATER) is False
    t.request_refund(LATER)
    assert t.voucher is not None
    assert [(line.line_index, line.quantity) for line in t.voucher.lines] == [(2, 2)]
    received = next(e for e in t.events if isinstance(e, ReturnReceived))
    assert received.damaged
    assert t.status is S.REFUND_REQUESTED


def test_exchange_goes_through_the_return_to_the_replacement_and_never_refunds() -> None:
    t = ticket(kind=K.EXCHANGE)
    t.approve("agent-1", LATER)
    t.receive_return([ReceivedLine(0, 1)], LATER)
    with pytest.raises(FailedPrecondition):
        t.request_refund(LATER)
    t.ship_replacement("s-77", LATER)
    t.close("agent-1", LATER)
    assert kinds(t.events)[-3:] == ["ReturnReceived", "ReplacementShipped", "TicketClosed"]
    assert isinstance(t.events[-2], ReplacementShipped) and t.events[-2].shipment_id == "s-77"
    assert t.voucher is None


@pytest.mark.parametrize(
    ("kind", "move"),
    [
        (K.REFUND_ONLY, lambda t: t.receive_return([ReceivedLine(0, 1)], LATER)),
        (K.RETURN_AND_REFUND, lambda t: t.request_refund(LATER)),
        (K.EXCHANGE, lambda t: t.ship_replacement("s-1", LATER)),
        (K.RETURN_AND_REFUND, lambda t: t.refund_succeeded("RFt-1", "x", LATER)),
    ],
)
def test_moves_outside_the_kinds_table_are_illegal(kind: TicketKind, move: object) -> None:
    t = ticket(kind=kind)
    with pytest.raises(FailedPrecondition):
        move(t)  # type: ignore[operator]
    assert t.status is S.OPEN


def test_an_answered_ticket_cannot_be_answered_again() -> None:
    t = ticket()
    t.reject("agent-1", "no", LATER)
    with pytest.raises(IllegalTransition):
        t.approve("agent-2", LATER)
    assert isinstance(t.events[-1], TicketRejected) and t.answered_by == "agent-1"


def test_every_kinds_table_reaches_closed_and_closed_is_the_end() -> None:
    for kind, table in lifecycle.TRANSITIONS.items():
        assert table[S.CLOSED] == frozenset()
        reachable = {S.OPEN}
        frontier = [S.OPEN]
        while frontier:
            for target in table[frontier.pop()]:
                if target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        assert reachable == set(table), kind


def test_a_received_line_not_on_the_ticket_or_more_than_asked_is_invalid() -> None:
    t = ticket(order(), [(2, 2)])
    t.approve("agent-1", LATER)
    with pytest.raises(InvalidArgument) as invalid:
        t.receive_return([ReceivedLine(0, 1)], LATER)
    assert invalid.value.field == "received[0].line_index"
    with pytest.raises(InvalidArgument) as invalid:
        t.receive_return([ReceivedLine(2, 3)], LATER)
    assert invalid.value.field == "received[0].quantity"
    with pytest.raises(InvalidArgument) as invalid:
        t.receive_return([ReceivedLine(2, 1, damaged=2)], LATER)
    assert invalid.value.field == "received[0].damaged"
    assert t.status is S.APPROVED


# ---- refunds that fail


def test_a_refund_the_provider_closed_is_asked_again_by_a_person_under_a_new_number() -> None:
    t = ticket(kind=K.REFUND_ONLY)
    t.approve("agent-1", LATER)
    t.request_refund(LATER)
    assert t.refund_failed("RFt-1", RefundFailure.CLOSED, "closed by the provider", LATER) is True
    assert t.refund_failed("RFt-1", RefundFailure.CLOSED, "closed by the provider", LATER) is False
    failed = t.events[-1]
    assert isinstance(failed, RefundFailed) and failed.status is RefundFailure.CLOSED
    voucher = t.voucher
    t.retry_refund(LATER)
    assert t.refund_no == "RFt-1_2" and t.voucher == voucher
    with pytest.raises(Refused) as refused:
        t.refund_succeeded("RFt-1", "late", LATER)
    assert refused.value.field == "out_refund_no"
    assert t.refund_succeeded("RFt-1_2", "503", LATER)


def test_an_abnormal_refund_is_never_sent_again_but_may_still_land_or_be_settled() -> None:
    t = ticket(kind=K.REFUND_ONLY)
    t.approve("agent-1", LATER)
    t.request_refund(LATER)
    t.refund_failed("RFt-1", RefundFailure.ABNORMAL, "card frozen", LATER)
    with pytest.raises(FailedPrecondition):
        t.retry_refund(LATER)
    assert t.refund_succeeded("RFt-1", "503", LATER) is True
    assert isinstance(t.events[-1], Refunded)


def test_a_refunded_ticket_cannot_be_failed_by_a_late_notice() -> None:
    t = ticket(kind=K.REFUND_ONLY)
    t.approve("agent-1", LATER)
    t.request_refund(LATER)
    t.refund_succeeded("RFt-1", "503", LATER)
    with pytest.raises(IllegalTransition):
        t.refund_failed("RFt-1", RefundFailure.CLOSED, "late", LATER)


# ---- several tickets on one order


def test_a_later_ticket_takes_the_next_units_shares_and_the_two_sum_to_the_line() -> None:
    snapshot = order()
    first = ticket(snapshot, [(2, 1)], ticket_id="t-1", kind=K.REFUND_ONLY)
    first.approve("agent-1", LATER)
    first.request_refund(LATER)
    second = ticket(
        snapshot, [(2, 2)], ticket_id="t-2", kind=K.REFUND_ONLY, reason=Reason.CHANGED_MIND, others=[first]
    )
    second.approve("agent-1", LATER)
    second.request_refund(LATER, others=[first])
    assert first.voucher is not None and second.voucher is not None
    assert second.voucher.lines[0].first_unit == 1
    line = snapshot.lines[2]
    # size and changed mind are the customer's choice: their units' shipping shares stay paid
    shares = units_share(line.amounts, 3, 1, 2)
    assert second.voucher.lines[0].amounts == Buckets(
        shares.goods_minor, shares.promotion_minor, shares.coupon_minor, shares.points_minor, 0
    )
    total = first.voucher.totals.plus(second.voucher.totals)
    assert total == Buckets(
        line.amounts.goods_minor,
        line.amounts.promotion_minor,
        line.amounts.coupon_minor,
        line.amounts.points_minor,
    )
    ledger = refunded_so_far([first, second])
    assert ledger[2].units == 3
    assert order_refund_state(snapshot, ledger) == "PARTIALLY_REFUNDED"


def test_a_closed_failed_refund_releases_its_units_unless_it_was_settled_outside() -> None:
    released = ticket(kind=K.REFUND_ONLY, ticket_id="t-1")
    released.approve("a", LATER)
    released.request_refund(LATER)
    released.refund_failed("RFt-1", RefundFailure.CLOSED, "closed", LATER)
    assert refunded_so_far([released])[0].units == 1
    released.close("a", LATER)
    assert refunded_so_far([released]) == {}
    settled = ticket(kind=K.REFUND_ONLY, ticket_id="t-2")
    settled.approve("a", LATER)
    settled.request_refund(LATER)
    settled.refund_failed("RFt-2", RefundFailure.ABNORMAL, "card frozen", LATER)
    settled.close("a", LATER, "paid back by bank transfer", settled_offline=True)
    assert refunded_so_far([settled])[0].units == 1


def test_open_tickets_claim_their_units_until_their_refund_is_in_the_ledger() -> None:
    t = ticket(order(), [(0, 2)], kind=K.REFUND_ONLY)
    assert claimed_by([t]) == {0: 2}
    t.approve("a", LATER)
    t.request_refund(LATER)
    assert claimed_by([t]) == {}
    assert refunded_so_far([t])[0].units == 2


def test_refunding_every_unit_makes_the_order_refunded() -> None:
    snapshot = order(((1000, 1), (500, 2)), 100, 0, 0, 0)
    t = ticket(snapshot, [(0, 1), (1, 2)], kind=K.REFUND_ONLY)
    t.approve("a", LATER)
    t.request_refund(LATER)
    ledger = refunded_so_far([t])
    assert order_refund_state(snapshot, ledger) == "REFUNDED"
    assert order_refund_state(snapshot, {}) == ""


# ---- approval by the rules


def test_the_rules_approve_recording_the_version_and_the_conditions_that_held() -> None:
    t = ticket(order(), [(2, 1)])
    decision = evaluate(default_rule_set(), t.facts(), LATER)
    assert t.decide(decision, LATER) is True
    approved = t.events[-1]
    assert isinstance(approved, TicketApproved)
    assert approved.by == "rules" and approved.rule_set_version == 1
    assert {c.condition for c in approved.conditions if c.held} == {
        "signed_within_days",
        "not_customised",
        "no_damage_reported",
        "max_amount_minor",
    }
    assert t.answered_at == LATER


def test_a_review_decision_leaves_the_ticket_open_in_the_queue_with_the_decision_kept() -> None:
    t = ticket(order(), [(0, 2)], reason=Reason.DAMAGED, damage_reported=True)
    decision = evaluate(default_rule_set(), t.facts(), LATER)
    assert t.decide(decision, LATER) is False
    assert t.status is S.OPEN and t.decision == decision and t.answered_at is None
    assert kinds(t.events) == ["TicketOpened"]


def test_a_size_ticket_suggests_a_coupon_when_opened() -> None:
    t = ticket(reason=Reason.SIZE_FIT, note="It is too small for me")
    suggested = t.events[-1]
    assert isinstance(suggested, RetentionSuggested)
    assert suggested.suggestion.size_hint == "consider one size up"
    assert suggested.suggestion.coupon_code == "FIT-t-1"
    plain = open_ticket(command(reason=Reason.SIZE_FIT), T0, retention=None)
    assert kinds(plain.events) == ["TicketOpened"]
