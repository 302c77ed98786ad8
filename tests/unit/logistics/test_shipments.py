"""A shipment's legal moves: the warehouse's scans in their order, shipped only with a waybill and a
scan-out, and tracking that never moves a shipment backwards."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition, NotFound
from services.logistics.domain.model import Node, ShipmentStatus
from services.logistics.handlers.shipments import get_shipment
from tests.unit.logistics.builders import T0, scan, shipment, shipped, waybill
from tests.unit.logistics.fakes import FakeUnitOfWork, State


def kinds(found: object) -> list[str]:
    return [event.kind for event in found.events]  # type: ignore[attr-defined]


def test_a_shipment_is_picked_packed_and_scanned_out_once_with_one_event_each() -> None:
    found = shipment()
    assert found.confirm_pick("WH-SH", T0)
    assert not found.confirm_pick("WH-SH", T0)
    assert found.confirm_packed("WH-SH", T0)
    found.attach_waybill(waybill(), "b-1")
    assert found.scan_out("WH-SH", T0)
    assert not found.scan_out("WH-SH", T0)
    assert found.status is ShipmentStatus.SHIPPED
    assert kinds(found) == ["ShipmentPicked", "ShipmentPacked", "WaybillCreated", "ShipmentScannedOut"]


def test_a_scan_at_the_wrong_warehouse_is_refused_naming_both() -> None:
    with pytest.raises(FailedPrecondition, match="ships from WH-SH, not from WH-BJ: wrong warehouse"):
        shipment().confirm_pick("WH-BJ", T0)


def test_a_scan_out_before_packing_is_refused() -> None:
    found = shipment()
    found.confirm_pick("WH-SH", T0)
    found.attach_waybill(waybill(), "b-1")
    with pytest.raises(FailedPrecondition, match="scan-out before packing"):
        found.scan_out("WH-SH", T0)


def test_a_scan_out_without_a_waybill_is_refused() -> None:
    found = shipment()
    found.confirm_pick("WH-SH", T0)
    found.confirm_packed("WH-SH", T0)
    with pytest.raises(FailedPrecondition, match="has no waybill yet"):
        found.scan_out("WH-SH", T0)


def test_packing_before_picking_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="not picked yet"):
        shipment().confirm_packed("WH-SH", T0)


def test_a_cancelled_shipment_gets_no_waybill_and_no_scans() -> None:
    found = shipment()
    assert found.cancel(T0)
    assert not found.cancel(T0)
    with pytest.raises(FailedPrecondition, match="is cancelled, no waybill for it"):
        found.may_get_waybill()
    with pytest.raises(FailedPrecondition, match="is cancelled"):
        found.confirm_pick("WH-SH", T0)


def test_a_shipped_shipment_cannot_be_cancelled() -> None:
    with pytest.raises(FailedPrecondition, match="too late to cancel"):
        shipped().cancel(T0)


def test_a_second_waybill_is_never_attached() -> None:
    found = shipment()
    assert found.attach_waybill(waybill("SF1"), "b-1")
    assert not found.attach_waybill(waybill("SF2"), "b-2")
    assert found.waybill is not None and found.waybill.waybill_no == "SF1"


def test_nodes_move_the_shipment_forward_and_a_late_older_node_does_not_move_it_back() -> None:
    found = shipped()
    found.track(scan(Node.PICKED_UP, T0 + timedelta(hours=1)))
    found.track(scan(Node.OUT_FOR_DELIVERY, T0 + timedelta(hours=20)))
    found.track(scan(Node.IN_TRANSIT, T0 + timedelta(hours=5)))
    assert found.status is ShipmentStatus.OUT_FOR_DELIVERY
    assert found.last_node is Node.OUT_FOR_DELIVERY
    assert kinds(found) == ["TrackingUpdated"] * 3
    assert [event.status for event in found.events] == [
        ShipmentStatus.PICKED_UP,
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.OUT_FOR_DELIVERY,
    ]


def test_delivery_is_announced_once_with_the_carrier_s_time() -> None:
    found = shipped()
    signed = T0 + timedelta(hours=30)
    found.track(scan(Node.DELIVERED, signed))
    assert found.status is ShipmentStatus.DELIVERED and found.delivered_at == signed
    assert kinds(found) == ["TrackingUpdated", "ShipmentDelivered"]


def test_a_problem_flags_the_shipment_without_moving_it_and_a_later_scan_clears_it() -> None:
    found = shipped()
    found.track(scan(Node.IN_TRANSIT, T0 + timedelta(hours=2)))
    found.track(scan(Node.PROBLEM, T0 + timedelta(hours=3)))
    assert (found.status, found.exception) == (ShipmentStatus.IN_TRANSIT, "problem scan")
    found.track(scan(Node.OUT_FOR_DELIVERY, T0 + timedelta(hours=4)))
    assert found.exception == ""
    assert kinds(found) == ["TrackingUpdated", "TrackingUpdated", "ShipmentException", "TrackingUpdated"]


def test_a_refused_parcel_returns_and_says_it_was_refused() -> None:
    found = shipped()
    found.track(scan(Node.REFUSED, T0 + timedelta(hours=30)))
    found.track(scan(Node.RETURNED, T0 + timedelta(hours=60)))
    assert found.status is ShipmentStatus.RETURNED
    returned = found.events[-1]
    assert (returned.kind, returned.refused) == ("ShipmentReturned", True)
    assert "ShipmentException" in kinds(found)


def test_scans_before_the_scan_out_are_kept_and_applied_at_the_scan_out() -> None:
    found = shipment()
    found.confirm_pick("WH-SH", T0)
    found.confirm_packed("WH-SH", T0)
    found.attach_waybill(waybill(), "b-1")
    found.track(scan(Node.PICKED_UP, T0 + timedelta(minutes=5)))
    assert found.status is ShipmentStatus.PACKED
    found.scan_out("WH-SH", T0 + timedelta(minutes=10))
    assert found.status is ShipmentStatus.PICKED_UP


async def test_a_shipment_read_through_another_order_is_answered_like_an_unknown_one() -> None:
    state = State(shipments={"s-1": shipment()})
    clock = FixedClock(T0)
    assert (await get_shipment(FakeUnitOfWork(state, clock), "s-1", "o-s-1")).shipment_id == "s-1"
    assert (await get_shipment(FakeUnitOfWork(state, clock), "s-1")).order_id == "o-s-1"
    with pytest.raises(NotFound, match="shipment s-1 not found"):
        await get_shipment(FakeUnitOfWork(state, clock), "s-1", "o-other")


def test_a_held_order_stops_the_warehouse_until_released_and_an_older_event_changes_nothing() -> None:
    found = shipment()
    held_at, released_at = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    assert found.hold("manual review", held_at, T0)
    for scan_it in (
        lambda: found.confirm_pick("WH-SH", T0),
        lambda: found.confirm_packed("WH-SH", T0),
        lambda: found.scan_out("WH-SH", T0),
        lambda: found.start_picking("pl-1", T0),
    ):
        with pytest.raises(FailedPrecondition) as refused:
            scan_it()
        assert "on hold (manual review)" in str(refused.value)
    assert found.release(released_at, T0)
    assert not found.hold("late, older hold", held_at, T0), "a hold older than the release is old news"
    assert found.held == "" and found.confirm_pick("WH-SH", T0)
    # the release may also arrive first: the older release does not undo the newer hold
    other = shipment("s-2")
    assert other.release(held_at, T0) and other.hold("frozen", released_at, T0)
    assert not other.release(held_at, T0) and other.held == "frozen"


def test_a_parcel_out_of_the_warehouse_is_not_held() -> None:
    found = shipped()
    assert not found.hold("manual review", T0 + timedelta(hours=1), T0) and found.held == ""
