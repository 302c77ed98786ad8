"""Outbox reports as the gateway keeps them for the dashboard: the latest per service, malformed ones
dropped, and made-up service names unable to grow the table without bound."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from services.gateway.bus_state import MAX_SERVICES, BusState
from services.kit.outbox import outbox_report


@dataclass
class Msg:
    data: bytes


def _report(service: str, waiting: int) -> Msg:
    return Msg(outbox_report(service, waiting, 1.5, datetime(2026, 12, 2, tzinfo=UTC)))


async def test_the_latest_report_per_service_is_kept_and_a_malformed_one_changes_nothing() -> None:
    state = BusState(js=None, subject_prefix="oms")
    await state.take_report(_report("orders", 3))
    await state.take_report(_report("orders", 1))
    for bad in (b"not json", b"{}", json.dumps({"service": "orders", "unpublished": "many"}).encode()):
        await state.take_report(Msg(bad))
    assert state.outboxes["orders"].unpublished == 1
    assert state.outboxes["orders"].oldest_age_seconds == 1.5


async def test_past_the_cap_only_known_services_are_updated() -> None:
    state = BusState(js=None, subject_prefix="oms")
    for n in range(MAX_SERVICES + 10):
        await state.take_report(_report(f"svc-{n}", n))
    assert len(state.outboxes) == MAX_SERVICES
    await state.take_report(_report("svc-0", 42))
    assert state.outboxes["svc-0"].unpublished == 42
