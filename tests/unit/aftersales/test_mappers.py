"""Every ticket kind and status the domain has is one the contract has, and every event the domain
records becomes an integration event (on its subject, with the ticket's ids)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oms.aftersales.v1 import aftersales_pb2 as pb
from services.aftersales import handlers, mappers
from services.aftersales.domain.lifecycle import TicketKind, TicketStatus
from services.aftersales.domain.tickets import Ticket
from tests.unit.aftersales.builders import T0, ticket
from tests.unit.aftersales.journeys import walk


@pytest.mark.parametrize("status", list(TicketStatus))
def test_every_status_is_in_the_contract(status: TicketStatus) -> None:
    assert pb.TicketStatus.Value(f"TICKET_STATUS_{status.value}")


@pytest.mark.parametrize("kind", list(TicketKind))
def test_every_kind_is_in_the_contract_and_read_back(kind: TicketKind) -> None:
    assert mappers.kind_of(pb.TicketKind.Value(f"TICKET_KIND_{kind.value}")) is kind


def _walked(kind: TicketKind, seed: int) -> list[Ticket]:
    """Every state of one walk of a ticket of that kind (picks from the seed), each a copy."""
    import copy
    import random

    rng = random.Random(seed)
    start = ticket(kind=kind, lines=((0, 1),))
    return [copy.deepcopy(state) for state in walk(start, [rng.randrange(100) for _ in range(12)])]


STATES = [state for kind in TicketKind for seed in range(12) for state in _walked(kind, seed)]


def test_the_walks_reach_every_status() -> None:
    assert {state.status for state in STATES} == set(TicketStatus)


@pytest.mark.parametrize("ticket", STATES)
def test_every_state_and_its_events_map_to_the_contract(ticket: Ticket) -> None:
    message = mappers.ticket_message(ticket, handlers.Policy(), T0 + timedelta(days=1))
    assert message.ticket_id == ticket.ticket_id and message.status == pb.TicketStatus.Value(
        f"TICKET_STATUS_{ticket.status.value}"
    )
    voucher = ticket.voucher or ticket.quote
    assert message.voucher.cash.amount_minor == voucher.cash_minor
    assert sum(line.cash.amount_minor for line in message.voucher.lines) == voucher.cash_minor
    for event in ticket.events:
        subject, proto = mappers.event_message(event)
        assert subject.startswith(("aftersales.", "alerts.")), subject
        assert proto.HasField("occurred_at")  # type: ignore[attr-defined]
        if subject.startswith("aftersales."):
            assert (proto.ticket_id, proto.order_id) == (ticket.ticket_id, ticket.order_id)  # type: ignore[attr-defined]
