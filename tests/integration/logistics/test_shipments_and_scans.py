"""Shipments through the servicer on real Postgres, with waybills from the sandbox: the warehouse's
scans in their order, refusals by name, pick lists with QR codes, and the order's code as an image."""

from __future__ import annotations

import grpc
import pytest

from oms.logistics.v1 import logistics_pb2 as pb
from tests.integration.logistics.conftest import Service, order_request
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def waybilled(service: Service, *shipment_ids: str) -> pb.WaybillBatch:
    queued = await service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=list(shipment_ids)))
    return await service.run_batch(queued.batch_id)


async def refused(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == code, error.value.details()
    return str(error.value.details())


async def test_an_order_gets_one_shipment_per_warehouse_idempotently(service: Service) -> None:
    request = order_request("o-split", ("WH-SH", "SF"), ("WH-BJ", "ZTO"))
    first = (await service.stub.CreateShipments(request)).shipments
    again = (await service.stub.CreateShipments(request)).shipments
    assert [s.warehouse_id for s in first] == ["WH-BJ", "WH-SH"] or [s.warehouse_id for s in first] == [
        "WH-SH",
        "WH-BJ",
    ]
    assert {s.shipment_id for s in first} == {s.shipment_id for s in again}
    assert all(s.status == pb.SHIPMENT_STATUS_CREATED for s in first)
    assert [subject for subject, _ in await service.outbox()] == ["logistics.shipment_created"] * 2
    found = await service.stub.GetShipment(pb.GetShipmentRequest(shipment_id=first[0].shipment_id))
    assert found.shipment.destination.city == "上海市"
    assert not found.shipment.HasField("waybill")


async def test_a_shipment_is_picked_packed_waybilled_and_scanned_out(service: Service) -> None:
    (shipment,) = (await service.stub.CreateShipments(order_request("o-flow"))).shipments
    sid = shipment.shipment_id
    await service.stub.ConfirmPick(pb.ConfirmPickRequest(warehouse_id="WH-SH", shipment_id=sid))
    details = await refused(
        service.stub.ScanOut(pb.ScanOutRequest(warehouse_id="WH-SH", code=sid)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "scan-out before packing" in details
    await service.stub.ConfirmPacked(pb.ConfirmPackedRequest(warehouse_id="WH-SH", shipment_id=sid))
    details = await refused(
        service.stub.ScanOut(pb.ScanOutRequest(warehouse_id="WH-SH", code=sid)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "has no waybill yet" in details
    batch = await waybilled(service, sid)
    (item,) = batch.items
    assert item.state == pb.WAYBILL_STATE_CREATED and item.waybill_no.startswith("SF")
    details = await refused(
        service.stub.ScanOut(pb.ScanOutRequest(warehouse_id="WH-BJ", code=item.waybill_no)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "ships from WH-SH, not from WH-BJ" in details
    out = (await service.stub.ScanOut(pb.ScanOutRequest(warehouse_id="WH-SH", code=item.waybill_no))).shipment
    assert out.status >= pb.SHIPMENT_STATUS_SHIPPED
    assert out.waybill.sorting_code and out.waybill.label_json
    subjects = [subject for subject, _ in await service.outbox()]
    for subject in (
        "logistics.picked",
        "logistics.packed",
        "logistics.waybill_created",
        "logistics.scanned_out",
    ):
        assert subjects.count(subject) == 1, subject
    (waybills,) = [w for w in await service.sandbox.waybills() if w["order_id"] == sid]
    assert waybills["waybill_no"] == item.waybill_no


async def test_unknown_ids_are_not_found_and_a_cancelled_order_gets_no_waybill(service: Service) -> None:
    await refused(
        service.stub.GetShipment(pb.GetShipmentRequest(shipment_id="nope")), grpc.StatusCode.NOT_FOUND
    )
    await refused(
        service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=["nope"])),
        grpc.StatusCode.NOT_FOUND,
    )
    (shipment,) = (await service.stub.CreateShipments(order_request("o-cancel"))).shipments
    await service.stub.CancelShipments(pb.CancelShipmentsRequest(order_id="o-cancel"))
    details = await refused(
        service.stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=[shipment.shipment_id])),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "order o-cancel is cancelled, no waybill for it" in details
    details = await refused(
        service.stub.CreateShipments(order_request("o-bad", ("WH-SH", "DHL"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("shipments[0].carrier: unknown carrier 'DHL'")


async def test_pick_tasks_come_in_priority_order_and_a_pick_list_prints_qr_codes(service: Service) -> None:
    await service.stub.CreateShipments(order_request("o-normal"))
    await service.stub.CreateShipments(order_request("o-cold", goods="cold_chain"))
    await service.stub.CreateShipments(order_request("o-rush", priority=pb.PRIORITY_EXPEDITED))
    tasks = (await service.stub.ListPickTasks(pb.ListPickTasksRequest(warehouse_id="WH-SH"))).tasks
    assert [t.order_id for t in tasks] == ["o-rush", "o-cold", "o-normal"]
    created = (
        await service.stub.CreatePickList(pb.CreatePickListRequest(warehouse_id="WH-SH", max_tasks=2))
    ).pick_list
    assert [s.order_id for s in created.shipments] == ["o-rush", "o-cold"]
    assert all(s.status == pb.SHIPMENT_STATUS_PICKING for s in created.shipments)
    left = (await service.stub.ListPickTasks(pb.ListPickTasksRequest(warehouse_id="WH-SH"))).tasks
    assert [t.order_id for t in left] == ["o-normal"]
    page = (
        await service.stub.RenderPickList(pb.RenderPickListRequest(pick_list_id=created.pick_list_id))
    ).page
    html = page.data.decode()
    assert page.content_type.startswith("text/html")
    assert html.count("<svg") == 4  # one per order and one per line
    assert "o-rush" in html and "龙井茶" in html
    png = (
        await service.stub.RenderOrderCode(pb.RenderOrderCodeRequest(order_id="o-rush", format="png"))
    ).image
    assert png.content_type == "image/png" and png.data.startswith(b"\x89PNG")
    await refused(
        service.stub.RenderOrderCode(pb.RenderOrderCodeRequest(order_id="o-none")), grpc.StatusCode.NOT_FOUND
    )


async def test_a_malformed_push_is_quarantined_with_its_reason_and_the_carrier_is_answered(
    service: Service,
) -> None:
    reply = await service.stub.ReportTracking(
        pb.ReportTrackingRequest(carrier="sf", content_type="application/json", body=b'{"Body": {}}')
    )
    assert reply.quarantine_id and reply.nodes_recorded == 0
    assert b'"return_code":"0000"' in reply.reply.data
    quarantined = (await service.stub.ListQuarantinedPushes(pb.ListQuarantinedPushesRequest())).pushes
    # (the session's carrier sandbox may still deliver a late push of an earlier test: only ours counts)
    ours = [(q.carrier, q.reason) for q in quarantined if q.quarantine_id == reply.quarantine_id]
    assert ours == [("sf", "Body.WaybillRoute is missing or empty")]
    await eventually(lambda: True)


async def test_a_shipment_planned_without_an_origin_ships_from_its_warehouses_dock(service: Service) -> None:
    request = order_request("o-dock", ("WH-BJ", "SF"))
    request.shipments[0].ClearField("origin")
    (shipment,) = (await service.stub.CreateShipments(request)).shipments
    assert (shipment.origin.city, shipment.origin.district) == ("北京市", "顺义区")
    batch = await waybilled(service, shipment.shipment_id)
    assert batch.items[0].waybill_no
    # the carrier was told the dock's address: its waybill starts in Beijing
    [made] = [w for w in await service.sandbox.waybills() if w["order_id"] == shipment.shipment_id]
    assert made["origin"] == "北京"
