"""A thousand e-waybills in one action against the sandbox over HTTP, with 10 % failures, timeouts
after the waybill was made (answers that never come, connections dropped) and one dead carrier:
every shipment ends with exactly one waybill at its carrier or in the dead-letter list, and the dead
carrier's breaker opens, is alerted, and closes again once it is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.common.v1 import common_pb2
from oms.logistics.v1 import logistics_pb2 as pb
from tests.integration.logistics.conftest import Service, order_request
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)

PLAN = (("SF", 300), ("ZTO", 200), ("YTO", 100), ("EMS", 100), ("JD", 100), ("STO", 100), ("YUNDA", 100))


async def open_shipments(service: Service) -> dict[str, str]:
    """1,000 orders of one shipment each; shipment id → routing's carrier code."""
    gate = asyncio.Semaphore(20)
    carriers: dict[str, str] = {}

    async def one(number: int, carrier: str) -> None:
        async with gate:
            reply = await service.stub.CreateShipments(order_request(f"o-{number}", ("WH-SH", carrier)))
        carriers[reply.shipments[0].shipment_id] = carrier

    plan = [carrier for carrier, count in PLAN for _ in range(count)]
    await asyncio.gather(*(one(number, carrier) for number, carrier in enumerate(plan)))
    return carriers


async def breaker_of(service: Service, carrier: str) -> int:
    carriers = (await service.stub.ListCarriers(pb.ListCarriersRequest())).carriers
    return next(c.breaker for c in carriers if c.carrier == carrier)


async def test_a_thousand_waybills_through_failures_timeouts_and_a_dead_carrier(service: Service) -> None:
    sandbox = service.sandbox
    await sandbox.control(
        "all", push_enabled=False, failure_rate=0.1, timeout_after_create_rate=0.05, hang_ms=2000
    )
    await sandbox.control("zto", timeout_mode="drop")
    await sandbox.control("jd", dead=True)
    carriers = await open_shipments(service)
    queued = await service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=list(carriers)))
    assert (queued.queued, queued.skipped) == (1000, 0)

    batch = await service.run_batch(queued.batch_id, within=45)

    at_carriers = Counter(w["order_id"] for w in await sandbox.waybills())
    assert max(at_carriers.values()) == 1, "a shipment got two waybills"
    dead = {item.shipment_id for item in batch.items if item.state == pb.WAYBILL_STATE_DEAD}
    created = {
        item.shipment_id: item.waybill_no for item in batch.items if item.state == pb.WAYBILL_STATE_CREATED
    }
    assert len(dead) + len(created) == 1000
    assert {sid for sid, carrier in carriers.items() if carrier == "JD"} <= dead
    # JD is dead. The others fail 10 % and time out 5 % of their calls, ZTO's time out by dropping the
    # connection, and the sandbox shares this machine: on a busy one a carrier's slow answers open its
    # breaker (seen in a clean-clone run: SF's opened and closed several times, 63 more dead letters),
    # and its items that meet the open breaker on their last attempt end as dead letters. That is the
    # breaker at work; nothing is lost (every dead letter is replayed below and all 1,000 get a waybill).
    dead_by_carrier = Counter(carriers[sid] for sid in dead)
    assert len(created) >= 600, f"only {len(created)} waybills; dead letters by carrier {dead_by_carrier}"
    numbers = {w["order_id"]: w["waybill_no"] for w in await sandbox.waybills()}
    assert all(numbers[sid] == number for sid, number in created.items())
    retried = [item for item in batch.items if item.state == pb.WAYBILL_STATE_CREATED and item.attempts > 1]
    assert retried, "no request needed a second attempt"
    letters = (
        await service.stub.ListWaybillDeadLetters(
            pb.ListWaybillDeadLettersRequest(page=common_pb2.PageRequest(page_size=500))
        )
    ).items
    assert {item.shipment_id for item in letters} == dead

    # open, or probing (half open) when the batch outlasted its open time: anything but closed
    await eventually(lambda: breaker_of(service, "jd"), within=5)
    assert await breaker_of(service, "jd") in (pb.BREAKER_STATE_OPEN, pb.BREAKER_STATE_HALF_OPEN)
    alerts = [
        alerts_pb.AlertRaised.FromString(payload) for _, payload in await service.outbox("alerts.raised")
    ]
    # JD's breaker is alerted (on a busy machine ZTO's dropped calls may open its breaker too)
    opened_alerts = [a.message for a in alerts if a.kind == "carrier_circuit_open"]
    assert any(message.startswith("the circuit breaker of JD") for message in opened_alerts), opened_alerts
    assert sum(1 for a in alerts if a.kind == "waybill_dead_letter") == len(dead)
    assert len(await service.outbox("logistics.waybill_created")) == len(created)

    # the carrier is back: once the breaker's open time has passed, the replayed dead letters probe it
    await sandbox.control("all", failure_rate=0.0, timeout_after_create_rate=0.0)
    await sandbox.control("jd", dead=False)
    _, opened = service.logistics.carriers.breaker("jd")
    assert opened is not None
    await eventually(lambda: time.time() > opened.timestamp() + 1.05, within=5)
    for shipment_id in sorted(dead):
        await service.stub.ReplayWaybillDeadLetter(pb.ReplayWaybillDeadLetterRequest(shipment_id=shipment_id))
    batch = await service.run_batch(queued.batch_id, within=30)
    assert batch.created == 1000 and batch.dead == 0
    await eventually(lambda: _closed(service), within=5)
    at_carriers = Counter(w["order_id"] for w in await sandbox.waybills())
    assert set(at_carriers) >= set(carriers) and max(at_carriers.values()) == 1


async def _closed(service: Service) -> bool:
    return await breaker_of(service, "jd") == pb.BREAKER_STATE_CLOSED


async def test_a_batch_skips_shipments_with_a_waybill_and_a_request_id_answers_the_same_batch(
    service: Service,
) -> None:
    await service.sandbox.control("all", push_enabled=False)
    first = (await service.stub.CreateShipments(order_request("o-again"))).shipments[0].shipment_id
    queued = await service.stub.CreateWaybills(
        pb.CreateWaybillsRequest(shipment_ids=[first], request_id="r-1")
    )
    await service.run_batch(queued.batch_id)
    again = await service.stub.CreateWaybills(
        pb.CreateWaybillsRequest(shipment_ids=[first], request_id="r-1")
    )
    assert again.batch_id == queued.batch_id
    other = await service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=[first]))
    assert (other.queued, other.skipped) == (0, 1)
    batch = (await service.stub.GetWaybillBatch(pb.GetWaybillBatchRequest(batch_id=other.batch_id))).batch
    assert batch.finished and batch.items[0].last_error.startswith("already has waybill SF")
