"""The worked example of docs/aftersales.md, figure by figure: if the rule changes, the document must."""

from __future__ import annotations

from datetime import timedelta

from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.lifecycle import TicketKind
from services.aftersales.domain.order_snapshot import Buckets
from services.aftersales.domain.reasons import Reason
from services.aftersales.domain.tickets import order_refund_state, refunded_so_far
from services.aftersales.domain.vouchers import unit_shares
from tests.unit.aftersales.builders import T0, order, ticket

LATER = T0 + timedelta(hours=2)


def test_the_documents_order_splits_as_shown() -> None:
    snapshot = order()
    assert [line.amounts for line in snapshot.lines] == [
        Buckets(25800, 2050, 1025, 342, 547),
        Buckets(5990, 476, 238, 79, 127),
        Buckets(5970, 474, 237, 79, 126),
    ]
    assert [line.amounts.paid_minor for line in snapshot.lines] == [22930, 5324, 5306]
    assert snapshot.paid_minor == 33560
    assert unit_shares(snapshot.lines[0].amounts, 2) == [
        Buckets(12900, 1025, 513, 171, 274),
        Buckets(12900, 1025, 512, 171, 273),
    ]


def test_the_documents_two_tickets_refund_the_shirt_line_exactly() -> None:
    snapshot = order()
    first = ticket(snapshot, [(0, 1)], ticket_id="t-1", reason=Reason.SIZE_FIT, note="too small")
    first.approve("agent-1", LATER)
    first.receive_return([ReceivedLine(0, 1)], LATER)
    first.request_refund(LATER)
    assert first.voucher is not None and first.refund_no == "RFt-1"
    assert first.voucher.lines[0].amounts == Buckets(12900, 1025, 513, 171, 0)
    assert (first.voucher.cash_minor, first.voucher.points_minor, first.voucher.shipping_minor) == (
        11191,
        171,
        0,
    )
    first.refund_succeeded("RFt-1", "50300000012026031000001", LATER)
    second = ticket(snapshot, [(0, 1)], ticket_id="t-2", kind=TicketKind.REFUND_ONLY, others=[first])
    second.approve("agent-1", LATER)
    second.request_refund(LATER, others=[first])
    assert second.voucher is not None
    assert second.voucher.lines[0].first_unit == 1
    assert second.voucher.lines[0].amounts == Buckets(12900, 1025, 512, 171, 0)
    assert (second.voucher.cash_minor, second.voucher.points_minor) == (11192, 171)
    ledger = refunded_so_far([first, second])
    assert ledger[0].amounts == Buckets(25800, 2050, 1025, 342, 0)
    assert (
        first.voucher.cash_minor + second.voucher.cash_minor == 22383 == snapshot.lines[0].amounts.cash_minor
    )
    assert order_refund_state(snapshot, ledger) == "PARTIALLY_REFUNDED"
    damaged = ticket(snapshot, [(0, 1)], ticket_id="t-3", reason=Reason.DAMAGED)
    assert damaged.quote.cash_minor == 11191 + 274
