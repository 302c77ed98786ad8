"""Tickets walked through their states by the domain's own moves: a move is picked among those the
ticket's status allows, so any sequence of picks is a legal journey (hypothesis draws them). The
first move of each status goes forward (pick 0 walks the happy path)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from services.aftersales.domain.approval import default_rule_set, evaluate
from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.events import RefundFailure
from services.aftersales.domain.lifecycle import REFUNDS, RETURNS, TicketStatus
from services.aftersales.domain.tickets import Ticket

S = TicketStatus
STEP = timedelta(hours=5)
Move = Callable[[Ticket, datetime, int], object]


def _decide(t: Ticket, now: datetime, pick: int) -> None:
    t.decide(evaluate(default_rule_set(), t.facts(), now), now)


def _sla(t: Ticket, now: datetime, pick: int) -> None:
    t.apply_sla(t.opened_at + timedelta(hours=49 if pick % 2 else 73))


def _receive(t: Ticket, now: datetime, pick: int) -> None:
    received = []
    for position, line in enumerate(t.lines):
        quantity = line.quantity if position == 0 else (pick + position) % (line.quantity + 1)
        received.append(ReceivedLine(line.line_index, quantity, (pick // 2) % (quantity + 1)))
    t.receive_return(received, now)


def _fail(t: Ticket, now: datetime, pick: int) -> None:
    failure = RefundFailure.CLOSED if (pick // 2) % 2 else RefundFailure.ABNORMAL
    t.refund_failed(t.refund_no, failure, f"provider said {failure.value}", now)


def moves(t: Ticket) -> list[Move]:
    """The moves the ticket's kind and status allow now."""
    close: Move = lambda t, now, pick: t.close(f"agent-{pick % 3}", now, f"closed {pick}")  # noqa: E731
    status = t.status
    if status is S.OPEN:
        return [
            lambda t, now, pick: t.approve("agent-1", now),
            _decide,
            lambda t, now, pick: t.reject("agent-2", f"no, {pick}", now),
            _sla,
            close,
        ]
    if status is S.APPROVED:
        if t.kind in RETURNS:
            return [lambda t, now, pick: t.mark_return_sent(f"SF{pick:08d}", now), _receive, close]
        return [lambda t, now, pick: t.request_refund(now), close]
    if status is S.RETURN_PENDING:
        return [_receive, close]
    if status is S.RETURN_RECEIVED:
        if t.kind in REFUNDS:
            return [lambda t, now, pick: t.request_refund(now)]
        return [lambda t, now, pick: t.ship_replacement(f"shp-{pick}", now)]
    if status is S.REFUND_REQUESTED:
        return [lambda t, now, pick: t.refund_succeeded(t.refund_no, f"50{pick:010d}", now), _fail]
    if status is S.REFUND_FAILED:
        options: list[Move] = [
            lambda t, now, pick: t.close("agent-1", now, "settled", settled_offline=bool((pick // 2) % 2)),
            lambda t, now, pick: t.refund_succeeded(t.refund_no, f"late{pick}", now),
        ]
        if t.refund_failure is RefundFailure.CLOSED:
            options.append(lambda t, now, pick: t.retry_refund(now))
        return options
    if status is S.CLOSED:
        return []
    if status is S.REPLACEMENT_SHIPPED:
        replacement = t.replacement_shipment_id
        return [
            close,
            lambda t, now, pick: t.replacement_delivered(replacement, now, now),
            lambda t, now, pick: t.replacement_stopped(replacement, f"cancelled {pick}", now),
            lambda t, now, pick: t.add_note(f"agent-{pick}", f"客户来电 {pick}", now),
        ]
    return [close]


def walk(t: Ticket, picks: Iterable[int]) -> Iterator[Ticket]:
    """Yield the ticket as opened, then after each picked move (until it is closed or the picks end)."""
    now = t.opened_at
    yield t
    for pick in picks:
        options = moves(t)
        if not options:
            return
        now += STEP
        options[pick % len(options)](t, now, pick)
        yield t
