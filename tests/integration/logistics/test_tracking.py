"""Tracking from the sandbox's real pushes (SF's route JSON, Kuaidi100's signed forms) through the
gateway's stand-in to ReportTracking: duplicated and reordered pushes record each node once and never
move a shipment back; a lost push is caught by the poll; 48 h without a first scan is alerted (the
clock is moved, nothing sleeps)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.logistics.v1 import events_pb2 as events_pb
from oms.logistics.v1 import logistics_pb2 as pb
from services.logistics import bootstrap
from services.logistics.domain.model import Node, Source, TrackingEvent
from tests.integration.logistics.conftest import Receiver, Service, order_request
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)
ROUTE = 7
RANK = {
    pb.SHIPMENT_STATUS_PACKED: 0,
    pb.SHIPMENT_STATUS_SHIPPED: 1,
    pb.SHIPMENT_STATUS_PICKED_UP: 2,
    pb.SHIPMENT_STATUS_IN_TRANSIT: 3,
    pb.SHIPMENT_STATUS_OUT_FOR_DELIVERY: 4,
    pb.SHIPMENT_STATUS_DELIVERED: 5,
}


async def shipped(service: Service, order_id: str, carrier: str) -> str:
    """Picked, packed, waybilled and scanned out at once (the parcel's timeline starts with its waybill)."""
    (shipment,) = (await service.stub.CreateShipments(order_request(order_id, ("WH-SH", carrier)))).shipments
    sid = shipment.shipment_id
    await service.stub.ConfirmPick(pb.ConfirmPickRequest(warehouse_id="WH-SH", shipment_id=sid))
    await service.stub.ConfirmPacked(pb.ConfirmPackedRequest(warehouse_id="WH-SH", shipment_id=sid))
    queued = await service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=[sid]))
    await service.run_batch(queued.batch_id)
    await service.stub.ScanOut(pb.ScanOutRequest(warehouse_id="WH-SH", code=sid))
    return sid


async def tracking(service: Service, sid: str) -> pb.GetTrackingResponse:
    return await service.stub.GetTracking(pb.GetTrackingRequest(shipment_id=sid))


async def delivered(service: Service, sid: str) -> bool:
    return (await tracking(service, sid)).shipment.status == pb.SHIPMENT_STATUS_DELIVERED


async def updates(service: Service, sid: str) -> list[events_pb.TrackingUpdated]:
    found = [
        events_pb.TrackingUpdated.FromString(p) for _, p in await service.outbox("logistics.tracking_updated")
    ]
    return [u for u in found if u.shipment_id == sid]


@pytest.mark.parametrize("carrier", ["SF", "ZTO"])
async def test_duplicated_and_reordered_pushes_record_each_node_once_and_never_move_back(
    service: Service, receiver: Receiver, carrier: str
) -> None:
    await service.sandbox.control("all", duplicate_push_rate=1.0, reorder_pushes=True)
    sid = await shipped(service, f"o-pushed-{carrier}", carrier)
    await eventually(lambda: delivered(service, sid), within=15)
    events = (await tracking(service, sid)).events
    assert len(events) == ROUTE
    assert {pb.TRACKING_NODE_PICKED_UP, pb.TRACKING_NODE_DELIVERED} <= {e.node for e in events}
    assert all(e.source == pb.TRACKING_SOURCE_PUSH for e in events)
    published = await updates(service, sid)
    assert len(published) == ROUTE
    ranks = [RANK[u.status] for u in published]
    assert ranks == sorted(ranks), "a late node moved the shipment back"
    assert len(await service.outbox("logistics.delivered")) == 1
    # every push was answered as the carrier's protocol wants, the repeats recording nothing
    assert any(
        nodes == 0 for name, nodes in receiver.answers if name == carrier.lower().replace("zto", "kuaidi100")
    )


async def test_a_lost_push_is_caught_by_the_poll(service: Service) -> None:
    await service.sandbox.control("sf", push_enabled=False)
    sid = await shipped(service, "o-lost", "SF")
    number = (await tracking(service, sid)).shipment.waybill.waybill_no

    async def finished() -> bool:
        return any(
            w["waybill_no"] == number and len(w["nodes"]) == ROUTE for w in await service.sandbox.waybills()
        )

    await eventually(finished, within=10)
    assert (await tracking(service, sid)).events == []
    assert await service.logistics.poller.poll_due() == 0  # not due yet: polled every 6 h
    service.clock.advance(timedelta(hours=7))
    assert await service.logistics.poller.poll_due() == 1
    found = await tracking(service, sid)
    assert found.shipment.status == pb.SHIPMENT_STATUS_DELIVERED
    assert len(found.events) == ROUTE and all(e.source == pb.TRACKING_SOURCE_POLL for e in found.events)
    assert await service.logistics.poller.poll_due() == 0  # delivered: no longer followed


async def test_48_hours_without_a_first_scan_raise_the_alert_after_a_poll(service: Service) -> None:
    await service.sandbox.control("zto", no_first_scan=True)
    sid = await shipped(service, "o-stalled", "ZTO")
    assert await service.logistics.poller.sweep() == 0
    service.clock.advance(timedelta(hours=47))
    assert await service.logistics.poller.sweep() == 0
    service.clock.advance(timedelta(hours=2))
    assert await service.logistics.poller.sweep() == 1
    assert await service.logistics.poller.sweep() == 0  # raised once
    alerts = [alerts_pb.AlertRaised.FromString(p) for _, p in await service.outbox("alerts.raised")]
    (alert,) = [a for a in alerts if a.kind == "logistics_no_first_scan"]
    assert (alert.order_id, alert.customer_id, alert.channel) == ("o-stalled", "c-1", "TAOBAO")
    assert "expected a first pickup scan by" in alert.message and alert.message.endswith("from a poll")
    assert sid in alert.message
    assert list(alert.roles) == ["warehouse_supervisor", "cs_lead"]


def sf_route_push(waybill: str, remark: str, minute: int) -> pb.ReportTrackingRequest:
    route = {
        "mailno": waybill,
        "acceptTime": f"2026-03-01 18:{minute:02d}:00",
        "acceptAddress": "上海",
        "remark": remark,
        "opCode": "30",
    }
    body = json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()
    return pb.ReportTrackingRequest(carrier="sf", content_type="application/json", body=body)


async def test_concurrent_pushes_share_transactions_and_each_is_answered_for_itself(service: Service) -> None:
    await service.sandbox.control("sf", push_enabled=False)
    sids = [await shipped(service, f"o-together-{n}", "SF") for n in range(6)]
    numbers = [(await tracking(service, sid)).shipment.waybill.waybill_no for sid in sids]
    desk = service.logistics.servicer.pushes
    before = desk.batches
    pushes = [sf_route_push(numbers[n % 6], f"到达 {n}", n) for n in range(48)]
    pushes += [sf_route_push(numbers[0], "到达 0", 0)]  # the first node again
    pushes += [sf_route_push("SF0000000000000", "nobody's parcel", 1)]
    answers = await asyncio.gather(*(service.stub.ReportTracking(p) for p in pushes))
    assert [a.nodes_recorded for a in answers] == [1] * 48 + [0, 0]
    assert [bool(a.quarantine_id) for a in answers] == [False] * 49 + [True]
    assert desk.batches - before < len(pushes), "every push went alone"
    for n, sid in enumerate(sids):
        events = (await tracking(service, sid)).events
        assert sorted(e.description for e in events) == sorted(f"到达 {m}" for m in range(n, 48, 6))
    assert len([u for sid in sids for u in await updates(service, sid)]) == 48


async def test_a_shipment_held_elsewhere_stalls_only_the_pushes_for_it(service: Service) -> None:
    await service.sandbox.control("sf", push_enabled=False)
    sids = [await shipped(service, f"o-held-{n}", "SF") for n in range(3)]
    numbers = [(await tracking(service, sid)).shipment.waybill.waybill_no for sid in sids]
    async with service.engine.begin() as conn:  # a long scan-out holds the first parcel's row
        await conn.execute(text("SELECT 1 FROM shipments WHERE shipment_id = :s FOR UPDATE"), {"s": sids[0]})
        waiting = []
        for wave in range(2):  # a group in each of the desk's two writers, both needing the held parcel
            waiting += [
                asyncio.ensure_future(
                    service.stub.ReportTracking(sf_route_push(numbers[0], f"w{wave}-{n}", n))
                )
                for n in range(3)
            ]
            await asyncio.sleep(0.01)
        others = await asyncio.wait_for(
            asyncio.gather(
                *(
                    service.stub.ReportTracking(sf_route_push(numbers[1 + n % 2], f"o-{n}", n))
                    for n in range(6)
                )
            ),
            timeout=5,
        )
        assert [a.nodes_recorded for a in others] == [1] * 6  # not stuck behind the held parcel
        assert not any(push.done() for push in waiting)
    held = await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
    assert [a.nodes_recorded for a in held] == [1] * 6
    assert len((await tracking(service, sids[0])).events) == 6


async def test_a_batch_of_pushes_is_answered_push_by_push_in_its_order(service: Service) -> None:
    await service.sandbox.control("sf", push_enabled=False)
    sids = [await shipped(service, f"o-batch-{n}", "SF") for n in range(3)]
    numbers = [(await tracking(service, sid)).shipment.waybill.waybill_no for sid in sids]
    pushes = [sf_route_push(numbers[n % 3], f"分拣 {n}", n) for n in range(9)]
    pushes.insert(
        3, pb.ReportTrackingRequest(carrier="sf", content_type="application/json", body=b"{not json")
    )
    pushes.insert(6, pb.ReportTrackingRequest(carrier="dhl", content_type="application/json", body=b"{}"))
    pushes.insert(7, sf_route_push("SF0000000000000", "nobody's parcel", 1))
    pushes.append(sf_route_push(numbers[0], "分拣 0", 0))  # the first node again: taken, records nothing
    reply = await service.stub.ReportTrackingBatch(
        pb.ReportTrackingBatchRequest(pushes=pushes, traceparents=["00-" + "1" * 32 + "-" + "2" * 16 + "-01"])
    )
    assert [outcome.WhichOneof("outcome") for outcome in reply.outcomes] == ["taken"] * 13
    taken = [outcome.taken for outcome in reply.outcomes]
    # malformed, an unknown carrier's format and nobody's parcel are quarantined, each with its reason
    assert [t.nodes_recorded for t in taken] == [1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0]
    assert [bool(t.quarantine_id) for t in taken] == [False] * 3 + [True] + [False] * 2 + [True] * 2 + [
        False
    ] * 5
    answered = [json.loads(t.reply.data) for t in taken]
    assert [a.get("return_code") for n, a in enumerate(answered) if n != 6] == ["0000"] * 12
    assert answered[6]["result"] is True  # what is not SF's push is answered the Kuaidi100 way
    # the batch's own quarantined pushes (the sandbox may still push for an earlier test's parcels)
    kept = [t.quarantine_id for t in taken if t.quarantine_id]
    async with service.engine.connect() as conn:
        reasons = (
            (
                await conn.execute(
                    text("SELECT reason FROM quarantined_pushes WHERE quarantine_id = ANY(:ids)"),
                    {"ids": kept},
                )
            )
            .scalars()
            .all()
        )
    assert (
        len(reasons) == 3
        and any("dhl" in r for r in reasons)
        and any("SF0000000000000" in r for r in reasons)
    )
    for n, sid in enumerate(sids):
        events = (await tracking(service, sid)).events
        assert sorted(e.description for e in events) == sorted(f"分拣 {m}" for m in range(n, 9, 3))


@pytest.mark.parametrize("count", [0, 501])
async def test_a_batch_of_no_pushes_or_too_many_is_refused_naming_the_field(
    service: Service, count: int
) -> None:
    push = sf_route_push("SF0000000000000", "x", 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.stub.ReportTrackingBatch(pb.ReportTrackingBatchRequest(pushes=[push] * count))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "pushes" in (refused.value.details() or "")
    async with service.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM quarantined_pushes"))).scalar() == 0


async def test_scans_are_stored_once_in_the_order_given_whatever_their_number(service: Service) -> None:
    new_uow = bootstrap.unit_of_work(service.engine, service.settings.keys, service.clock)
    at = service.clock.now().replace(microsecond=0)

    def scan(n: int) -> TrackingEvent:
        return TrackingEvent(
            Node.IN_TRANSIT, "30", f"到达 {n}", "上海", at + timedelta(minutes=n), Source.POLL
        )

    async with new_uow() as uow:  # a scan twice in one call: stored once
        added = await uow.tracking.add_many([("s-store", scan(n)) for n in (3, 1, 2, 1)])
        await uow.commit()
    assert added == {scan(n).key("s-store") for n in (1, 2, 3)}
    async with new_uow() as uow:  # known ones again with a new one: only the new is stored
        added = await uow.tracking.add_many([("s-store", scan(n)) for n in (1, 4, 2)])
        await uow.commit()
    assert added == {scan(4).key("s-store")}
    async with service.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT description FROM tracking_events WHERE shipment_id = 's-store' ORDER BY id")
        )
        assert [row.description for row in rows] == ["到达 3", "到达 1", "到达 2", "到达 4"]
