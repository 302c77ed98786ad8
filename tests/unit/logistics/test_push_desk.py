"""The push desk: pushes arriving together are written in one transaction, each answered for itself
(new nodes counted, repeats recording nothing, malformed and unknown ones quarantined), and a shared
transaction that fails is retried push by push, so only the failing push fails."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest

from services.kit.clock import FixedClock
from services.logistics.domain.anomalies import AnomalyRules
from services.logistics.domain.commands import TrackingPush
from services.logistics.domain.model import Shipment, TrackingEvent, Waybill
from services.logistics.domain.tracking import SF_PUSH_OK
from services.logistics.handlers.tracking import PushDesk, PushTaken
from tests.unit.logistics.builders import T0, shipped
from tests.unit.logistics.fakes import FakeTracking, FakeUnitOfWork, State

RULES = AnomalyRules()


def parcel(number: int) -> Shipment:
    found = shipped(f"s-{number}")
    found.waybill = Waybill(f"SF10000000000{number}", "sf", "021W", "021", {}, T0)
    return found


def push(waybill: str, remark: str, at: str = "2026-03-01 18:00:00") -> TrackingPush:
    route = {"mailno": waybill, "acceptTime": at, "acceptAddress": "上海", "remark": remark, "opCode": "30"}
    body = json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()
    return TrackingPush("sf", "application/json", body)


class Desk:
    def __init__(self) -> None:
        self.state = State(shipments={s.shipment_id: s for s in (parcel(1), parcel(2))})
        self.clock = FixedClock(datetime(2026, 3, 2, tzinfo=T0.tzinfo))
        self.transactions = 0
        self.desk = PushDesk(self.new_uow, RULES, writers=1)

    def new_uow(self) -> FakeUnitOfWork:
        self.transactions += 1
        return FakeUnitOfWork(self.state, self.clock)

    async def take(self, *pushes: TrackingPush) -> list[PushTaken | BaseException]:
        return await asyncio.gather(*(self.desk.take(p) for p in pushes), return_exceptions=True)


async def test_pushes_arriving_together_share_one_transaction_and_each_gets_its_own_answer() -> None:
    desk = Desk()
    answers = await desk.take(
        push("SF100000000001", "到达上海"),
        push("SF100000000002", "到达上海"),
        push("SF100000000001", "到达上海"),  # the first push's node again
        TrackingPush("sf", "application/json", b"<xml/>"),
        push("SF999999999999", "nobody's parcel"),
    )
    assert desk.transactions == 1
    taken = [a for a in answers if isinstance(a, PushTaken)]
    assert [t.nodes_recorded for t in taken] == [1, 1, 0, 0, 0]
    assert [bool(t.quarantine_id) for t in taken] == [False, False, False, True, True]
    assert all(t.reply == SF_PUSH_OK for t in taken)
    assert len(desk.state.tracking) == 2 and len(desk.state.quarantine) == 2
    assert [e.kind for e in desk.state.published] == ["TrackingUpdated", "TrackingUpdated"]


async def test_a_shared_transaction_that_fails_is_retried_push_by_push_and_only_the_failing_push_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = Desk()
    real_add = FakeTracking.add

    async def add(self: FakeTracking, shipment_id: str, event: TrackingEvent) -> bool:
        if event.description == "boom":
            raise ConnectionError("the database went away mid-statement")
        return await real_add(self, shipment_id, event)

    monkeypatch.setattr(FakeTracking, "add", add)
    first, failed, third = await desk.take(
        push("SF100000000001", "到达上海"),
        push("SF100000000002", "boom"),
        push("SF100000000002", "派送中"),
    )
    assert isinstance(failed, ConnectionError)
    assert isinstance(first, PushTaken) and first.nodes_recorded == 1
    assert isinstance(third, PushTaken) and third.nodes_recorded == 1
    assert desk.transactions == 1 + 3  # together, then each alone
    assert {key[3] for key in desk.state.tracking} == {"到达上海", "派送中"}
