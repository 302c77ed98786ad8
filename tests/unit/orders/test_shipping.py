"""Shipping through logistics on the fake unit of work: the ship step of the process manager (with
logistics' answers scripted), and logistics' events moving an order forward, never back, for one
shipment and for a split order, in order and out of order."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from oms.logistics.v1 import events_pb2 as lev
from oms.logistics.v1 import logistics_pb2 as lpb
from services.kit.ids import new_id
from services.orders import handlers, mappers, sla_rules
from services.orders.domain import sla
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Address, AlertRaised, Order, Priority, StatusChanged, accept
from services.orders.domain.orchestration import Step, StockState, Stored, next_step
from services.orders.domain.shipping import (
    PlannedParcel,
    Report,
    Shipment,
    ShipmentReport,
    ShippingPlan,
    Stage,
    logistics_word,
)
from services.orders.domain.sla import SlaState
from services.orders.domain.timeline import Actor
from services.orders.orchestrator import Orchestrator
from services.orders.peers import PeerRefused, PeerUnavailable, Plan
from services.orders.store import rows
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders
from tests.unit.orders.test_model import command

S = OrderStatus
TEST = Actor.service("test")
PLAN = ShippingPlan(
    "decision-1",
    (
        PlannedParcel("WH-SH", "SF", "standard", (("SKU-1", 2),)),
        PlannedParcel("WH-GZ", "ZTO", "economy", (("SKU-2", 1),)),
    ),
)
ONE_PARCEL = ShippingPlan(
    "decision-1", (PlannedParcel("WH-SH", "SF", "standard", (("SKU-1", 2), ("SKU-2", 1))),)
)


def order_with(
    status: OrderStatus, plan: ShippingPlan | None = None, shipments: tuple[Shipment, ...] = ()
) -> Order:
    order = accept(command(), "order-1", NOW)
    order.status, order.shipping_plan, order.shipments = status, plan, shipments
    order.events.clear()
    return order


def listed(*parcels: tuple[str, str, Stage]) -> tuple[Shipment, ...]:
    return tuple(
        Shipment(f"s-{warehouse}", warehouse, carrier, stage) for warehouse, carrier, stage in parcels
    )


# ---- the next step ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "stock", "plan", "shipments", "step"),
    [
        # allocated with routing's parcels kept: logistics opens the shipments
        (S.ALLOCATED, StockState.COMMITTED, PLAN, (), Step.SHIP),
        # opened already (logistics answered): nothing more to ask
        (S.ALLOCATED, StockState.COMMITTED, PLAN, listed(("WH-SH", "SF", Stage.CREATED)), None),
        # no plan kept: orders runs without logistics, the order waits at ALLOCATED as before
        (S.ALLOCATED, StockState.COMMITTED, None, (), None),
        # only an event told of a shipment so far: the answer naming them all is still wanted
        (
            S.ALLOCATED,
            StockState.COMMITTED,
            PLAN,
            (replace(listed(("WH-SH", "SF", Stage.PICKED))[0], listed=False),),
            Step.SHIP,
        ),
        (S.PICKING, StockState.COMMITTED, PLAN, listed(("WH-SH", "SF", Stage.PICKED)), None),
        (
            S.PICKING,
            StockState.COMMITTED,
            PLAN,
            (replace(listed(("WH-SH", "SF", Stage.PICKED))[0], listed=False),),
            Step.SHIP,
        ),
        (S.PACKED, StockState.COMMITTED, PLAN, listed(("WH-SH", "SF", Stage.PACKED)), None),
        (S.ON_HOLD, StockState.COMMITTED, PLAN, (), None),
        # cancelled with a shipment still in the warehouse: logistics must cancel it
        (S.CANCELLED, StockState.RELEASED, PLAN, listed(("WH-SH", "SF", Stage.PACKED)), Step.RELEASE),
        (S.CANCELLED, StockState.COMMITTED, PLAN, listed(("WH-SH", "SF", Stage.CREATED)), Step.RELEASE),
        (S.CANCELLED, StockState.RELEASED, PLAN, listed(("WH-SH", "SF", Stage.CANCELLED)), None),
        (S.CANCELLED, StockState.RELEASED, PLAN, (), None),
    ],
)
def test_the_process_manager_ships_an_allocated_order_and_cancels_a_cancelled_ones_shipments(
    status: OrderStatus,
    stock: StockState,
    plan: ShippingPlan | None,
    shipments: tuple[Shipment, ...],
    step: Step | None,
) -> None:
    assert next_step(order_with(status, plan, shipments), stock) is step


def test_the_plan_names_each_warehouse_the_stock_is_committed_at_and_refuses_one_it_never_planned() -> None:
    assert [p.carrier for p in PLAN.for_warehouses(("WH-GZ", "WH-SH"))] == ["ZTO", "SF"]
    with pytest.raises(Exception, match="decision decision-1 planned no carrier for WH-BJ"):
        PLAN.for_warehouses(("WH-SH", "WH-BJ"))


# ---- the ship step, with logistics scripted -----------------------------------------------------------


class ScriptedPeers:
    """Routing, inventory and logistics as the process manager sees them (peers.Peers' methods)."""

    ships = True

    def __init__(self, plan: ShippingPlan = PLAN) -> None:
        self.shipping = plan
        self.failures: list[Exception] = []  # raised by the next logistics calls, in turn
        self.opened: dict[tuple[str, str], Shipment] = {}  # logistics' shipments by (order, warehouse)
        self.calls: list[str] = []
        self.timers: list[SlaState | None] = []  # the SLA state each create_shipments call was given

    async def plan(self, order: Order, refused_decision_id: str = "") -> Plan:
        lines = tuple((p.warehouse_id, sku, qty) for p in self.shipping.parcels for sku, qty in p.lines)
        return Plan(lines, decision_id=self.shipping.decision_id, parcels=self.shipping.parcels)

    async def reserve(self, order_id: str, plan: Plan) -> bool:
        return True

    async def commit(self, order_id: str) -> tuple[str, ...]:
        return tuple(parcel.warehouse_id for parcel in self.shipping.parcels)

    async def release(self, order: Order, reason: str) -> None:
        self.calls.append("release")

    def _logistics(self, name: str) -> None:
        self.calls.append(name)
        if self.failures:
            raise self.failures.pop(0)

    async def create_shipments(self, order: Order, timer: SlaState | None = None) -> tuple[Shipment, ...]:
        assert order.shipping_plan is not None
        self.timers.append(timer)
        parcels = order.shipping_plan.for_warehouses(order.warehouses)
        for parcel in parcels:  # idempotent on (order, warehouse), as logistics is
            key = (order.order_id, parcel.warehouse_id)
            self.opened.setdefault(key, Shipment(new_id(), parcel.warehouse_id, parcel.carrier))
        self._logistics("create_shipments")
        return tuple(self.opened[(order.order_id, p.warehouse_id)] for p in parcels)

    async def cancel_shipments(self, order: Order) -> tuple[Shipment, ...]:
        self._logistics("cancel_shipments")
        found = [key for key in self.opened if key[0] == order.order_id]
        for key in found:
            self.opened[key] = replace(self.opened[key], stage=Stage.CANCELLED)
        return tuple(self.opened[key] for key in found)


def orchestrator(db: FakeOrders, peers: ScriptedPeers) -> Orchestrator:
    return Orchestrator(db.uow, POLICY, peers)  # type: ignore[arg-type]


async def drive(manager: Orchestrator) -> None:
    while await manager.run_due():
        pass


async def paid_order(db: FakeOrders) -> str:
    [result], _ = await handlers.ingest(db.uow(), POLICY, [command(paid_at=NOW - timedelta(minutes=1))], TEST)
    assert result.order is not None
    return result.order.order_id


async def test_an_allocated_order_gets_one_shipment_per_planned_warehouse_and_carrier() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    order_id = await paid_order(db)
    await drive(orchestrator(db, peers))
    stored = db.order(order_id)
    order = stored.order
    assert (order.status, stored.step) == (S.ALLOCATED, None)
    assert order.shipping_plan == PLAN
    assert [(s.warehouse_id, s.carrier, s.stage, s.listed) for s in order.shipments] == [
        ("WH-SH", "SF", Stage.CREATED, True),
        ("WH-GZ", "ZTO", Stage.CREATED, True),
    ]
    assert peers.calls == ["create_shipments"]
    assert "shipments_created" in db.kinds(order_id)


async def test_the_ship_step_gives_logistics_the_orders_sla_clock() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    with_sla = replace(POLICY, sla=sla_rules.shipped_sla())
    [result], _ = await handlers.ingest(
        db.uow(), with_sla, [command(paid_at=NOW - timedelta(minutes=1))], TEST
    )
    assert result.order is not None
    await drive(Orchestrator(db.uow, with_sla, peers))  # type: ignore[arg-type]
    [timer] = peers.timers
    assert timer is not None and timer.terms is not None
    # paid a minute ago, a normal order: 2 h to leave the warehouse (sla_rules.yaml)
    assert (timer.stage, timer.terms.category) == (sla.Stage.FULFILMENT, "normal")
    assert timer.deadline == NOW - timedelta(minutes=1) + timedelta(hours=2)


async def test_a_timed_out_ship_step_is_paused_then_asks_again_and_gets_the_same_shipments() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    peers.failures = [PeerUnavailable("logistics", grpc.StatusCode.DEADLINE_EXCEEDED, "no answer in 5 s")]
    order_id = await paid_order(db)
    manager = orchestrator(db, peers)
    await drive(manager)
    stored = db.order(order_id)
    assert (stored.order.status, stored.step, stored.step_waiting_for) == (S.ALLOCATED, "ship", "logistics")
    assert stored.step_attempts == 0, "an outage spends no attempt"
    assert stored.order.shipments == ()
    assert "step_paused" in db.kinds(order_id)
    db.clock.advance(timedelta(seconds=2))
    await drive(manager)
    order = db.order(order_id).order
    assert db.order(order_id).step is None
    assert len(peers.opened) == 2, "asked twice, opened once per warehouse"
    assert {s.shipment_id for s in order.shipments} == {s.shipment_id for s in peers.opened.values()}


async def test_logistics_refusing_the_shipments_freezes_the_allocated_order_with_the_reason() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    peers.failures = [
        PeerRefused(
            "logistics",
            grpc.StatusCode.INVALID_ARGUMENT,
            "",
            [("shipments[0].carrier", "unknown carrier XX")],
        )
    ]
    order_id = await paid_order(db)
    await drive(orchestrator(db, peers))
    stored = db.order(order_id)
    assert stored.order.status is S.EXCEPTION
    assert stored.order.status_reason == (
        "allocated, cannot be shipped: logistics: unknown carrier XX (shipments[0].carrier)"
    )
    assert stored.step is None and not stored.step_dead
    assert db.published(AlertRaised)


async def test_a_cancelled_order_has_its_shipments_cancelled_at_logistics_and_its_stock_given_back() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    order_id = await paid_order(db)
    manager = orchestrator(db, peers)
    await drive(manager)
    await handlers.cancel_order(db.uow(), order_id, "the buyer changed their mind", TEST)
    await drive(manager)
    stored = db.order(order_id)
    assert peers.calls == ["create_shipments", "cancel_shipments", "release"]
    assert [s.stage for s in stored.order.shipments] == [Stage.CANCELLED, Stage.CANCELLED]
    assert (stored.stock_state, stored.step) == (StockState.RELEASED.value, None)
    assert "shipments_cancelled" in db.kinds(order_id)


async def test_shipments_opened_for_an_order_cancelled_meanwhile_are_cancelled_by_its_next_step() -> None:
    db, peers = FakeOrders(), ScriptedPeers()
    order_id = await paid_order(db)
    manager = orchestrator(db, peers)
    await drive(manager)
    stored = db.order(order_id)
    # the ship step's answer had not come back when the order was cancelled and its stock released
    stored.order.status, stored.stock_state = S.CANCELLED, StockState.RELEASED.value
    stored.order.shipments = ()
    stored.schedule(None, NOW)
    answer = tuple(peers.opened.values())
    stored.order.shipments_answered(answer, NOW)
    assert next_step(stored.order, StockState.RELEASED) is Step.RELEASE
    stored.schedule("release", NOW)
    await drive(manager)
    assert peers.calls[-1] == "cancel_shipments"
    assert "release" not in peers.calls, "the stock was given back already"
    assert all(s.stage is Stage.CANCELLED for s in db.order(order_id).order.shipments)
    assert db.order(order_id).step is None


# ---- logistics' events ------------------------------------------------------------------------------------


async def shipping_order(db: FakeOrders, plan: ShippingPlan = PLAN, listed_too: bool = True) -> str:
    """An allocated order whose shipments logistics opened (`listed_too`), one per planned parcel."""
    order = accept(command(), new_id(), NOW)
    order.events.clear()
    order.status = S.ALLOCATED
    order.warehouses = tuple(parcel.warehouse_id for parcel in plan.parcels)
    order.shipping_plan = plan
    if listed_too:
        order.shipments = tuple(
            Shipment(f"s-{parcel.warehouse_id}", parcel.warehouse_id, parcel.carrier)
            for parcel in plan.parcels
        )
    db.state.orders[order.order_id] = Stored(order, stock_state=StockState.COMMITTED.value)
    return order.order_id


def report(kind: Report, order_id: str, warehouse: str = "WH-SH", **fields: object) -> ShipmentReport:
    values: dict[str, object] = {"warehouse_id": warehouse, "at": NOW}
    if kind in (Report.SCANNED_OUT, Report.WAYBILL, Report.DELIVERED, Report.TRACKING):
        values["waybill_no"] = f"SF{warehouse[-2:]}001"
    values.update(fields)
    return ShipmentReport(kind, order_id, f"s-{warehouse}", **values)  # type: ignore[arg-type]


async def reported(db: FakeOrders, one: ShipmentReport) -> handlers.Changes:
    uow = db.uow()  # as the consumer does: inside its inbox transaction, which it commits
    changes = await handlers.shipment_reported(uow, POLICY, one)
    await uow.commit()
    return changes


async def tell(db: FakeOrders, *reports: ShipmentReport) -> OrderStatus:
    for one in reports:
        await reported(db, one)
    return db.order(reports[0].order_id).order.status


def statuses(db: FakeOrders, order_id: str) -> list[OrderStatus]:
    return [event.status for owner, event in db.published(StatusChanged) if owner == order_id]


async def test_one_shipment_takes_the_order_from_picking_to_delivered_with_every_step_on_its_timeline() -> (
    None
):
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    assert await tell(db, report(Report.PICKED, order_id)) is S.PICKING
    assert await tell(db, report(Report.PACKED, order_id)) is S.PACKED
    assert await tell(db, report(Report.WAYBILL, order_id, carrier="sf")) is S.PACKED, "a waybill alone"
    assert await tell(db, report(Report.SCANNED_OUT, order_id, carrier="SF")) is S.SHIPPED
    order = db.order(order_id).order
    assert (order.waybill_no, order.scanned_out_at) == ("SFSH001", NOW)
    assert order.has_shipping_proof
    tracked = report(Report.TRACKING, order_id, node="IN_TRANSIT", area="杭州", detail="已到达杭州转运中心")
    assert await tell(db, tracked, replace(tracked, node="OUT_FOR_DELIVERY")) is S.SHIPPED
    assert await tell(db, report(Report.DELIVERED, order_id)) is S.DELIVERED
    assert statuses(db, order_id) == [S.PICKING, S.PACKED, S.SHIPPED, S.DELIVERED]
    kinds = db.kinds(order_id)
    for kind in ("picked", "packed", "waybill", "scanned_out", "proof", "tracking", "delivered"):
        assert kind in kinds
    assert kinds.count("tracking") == 2, "one entry per tracking node"
    assert "exception" not in kinds


async def test_a_split_order_picks_at_the_first_pick_ships_and_delivers_only_with_every_shipment() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db)
    assert await tell(db, report(Report.PICKED, order_id, "WH-SH")) is S.PICKING
    assert await tell(db, report(Report.PACKED, order_id, "WH-SH")) is S.PICKING, "WH-GZ is not packed"
    assert await tell(db, report(Report.PICKED, order_id, "WH-GZ")) is S.PICKING
    assert await tell(db, report(Report.PACKED, order_id, "WH-GZ")) is S.PACKED
    assert await tell(db, report(Report.SCANNED_OUT, order_id, "WH-SH")) is S.PACKED, "one of two is out"
    order = db.order(order_id).order
    assert order.waybill_no == "SFSH001", "the first shipment's waybill is the order's proof"
    assert await tell(db, report(Report.SCANNED_OUT, order_id, "WH-GZ")) is S.SHIPPED
    assert db.order(order_id).order.waybill_no == "SFSH001"
    assert [s.waybill_no for s in db.order(order_id).order.shipments] == ["SFSH001", "SFGZ001"]
    assert await tell(db, report(Report.DELIVERED, order_id, "WH-GZ")) is S.SHIPPED, "one of two delivered"
    assert await tell(db, report(Report.DELIVERED, order_id, "WH-SH")) is S.DELIVERED
    assert statuses(db, order_id) == [S.PICKING, S.PACKED, S.SHIPPED, S.DELIVERED]


async def test_late_and_repeated_events_never_move_the_order_back_nor_freeze_it() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await tell(db, *(report(kind, order_id) for kind in (Report.PICKED, Report.PACKED, Report.SCANNED_OUT)))
    assert db.order(order_id).order.status is S.SHIPPED
    version, timeline = db.order(order_id).order.version, list(db.state.timeline)
    for late in (Report.PICKED, Report.PACKED, Report.SCANNED_OUT, Report.PICKED):
        changes = await reported(db, report(late, order_id))
        assert changes.due_steps == set()
    assert db.order(order_id).order.status is S.SHIPPED
    assert db.order(order_id).order.version == version, "nothing new: nothing written"
    assert db.state.timeline == timeline
    assert S.EXCEPTION not in statuses(db, order_id)


async def test_events_out_of_order_walk_the_order_through_every_status_it_skipped() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    # packed before picked (two consumers race): the order passes PICKING on its way to PACKED
    assert await tell(db, report(Report.PACKED, order_id)) is S.PACKED
    assert await tell(db, report(Report.PICKED, order_id)) is S.PACKED
    kinds = db.kinds(order_id)
    assert (kinds[-1], kinds.count("picked")) == ("picked", 1), "a late step is still on the timeline, once"
    # delivered before the scan-out: SHIPPED needs the scan-out, so the order waits at PACKED …
    assert await tell(db, report(Report.DELIVERED, order_id)) is S.PACKED
    # … and walks SHIPPED → DELIVERED once it comes
    assert await tell(db, report(Report.SCANNED_OUT, order_id)) is S.DELIVERED
    assert statuses(db, order_id) == [S.PICKING, S.PACKED, S.SHIPPED, S.DELIVERED]


async def test_a_scan_out_without_a_waybill_is_not_shipment_until_the_waybill_is_known() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await tell(db, report(Report.PICKED, order_id), report(Report.PACKED, order_id))
    assert await tell(db, report(Report.SCANNED_OUT, order_id, waybill_no="")) is S.PACKED
    assert db.order(order_id).order.scanned_out_at is None, "no proof recorded without the waybill"
    assert await tell(db, report(Report.WAYBILL, order_id)) is S.SHIPPED
    order = db.order(order_id).order
    assert (order.waybill_no, order.scanned_out_at) == ("SFSH001", NOW)


async def test_events_that_overtake_the_ship_steps_answer_are_kept_but_all_of_means_nothing_yet() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, listed_too=False)
    assert await tell(db, report(Report.PICKED, order_id, "WH-SH")) is S.PICKING
    await tell(db, report(Report.PACKED, order_id, "WH-SH"), report(Report.SCANNED_OUT, order_id, "WH-SH"))
    assert db.order(order_id).order.status is S.PICKING, "the order does not know its other shipment yet"
    stored = db.order(order_id)
    assert next_step(stored.order, StockState.COMMITTED) is Step.SHIP, "the list is still wanted"
    answer = (Shipment("s-WH-SH", "WH-SH", "SF"), Shipment("s-WH-GZ", "WH-GZ", "ZTO"))
    stored.order.shipments_answered(answer, NOW)
    assert stored.order.status is S.PICKING, "WH-GZ is still to be packed"
    assert [s.stage for s in stored.order.shipments] == [Stage.SHIPPED, Stage.CREATED]
    assert next_step(stored.order, StockState.COMMITTED) is None


async def test_a_carrier_problem_is_on_the_timeline_and_alerted_and_a_return_is_on_the_timeline() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await tell(db, *(report(kind, order_id) for kind in (Report.PICKED, Report.PACKED, Report.SCANNED_OUT)))
    problem = report(Report.EXCEPTION, order_id, node="PROBLEM", detail="地址不详", waybill_no="SFSH001")
    assert await tell(db, problem) is S.SHIPPED
    [(_, alert)] = [(o, a) for o, a in db.published(AlertRaised) if o == order_id]
    assert isinstance(alert, AlertRaised) and alert.kind == "shipment_exception"
    assert "地址不详" in alert.message
    returned = report(Report.RETURNED, order_id, refused=True, waybill_no="SFSH001")
    assert await tell(db, returned) is S.SHIPPED, "returns are after-sales' to act on"
    kinds = db.kinds(order_id)
    assert {"exception", "alert", "returned"} <= set(kinds)


async def test_a_held_order_keeps_what_the_warehouse_did_and_catches_up_when_released() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await handlers.hold_order(db.uow(), order_id, "address check", TEST)
    await tell(db, report(Report.PICKED, order_id), report(Report.PACKED, order_id))
    assert db.order(order_id).order.status is S.ON_HOLD
    released, _ = await handlers.release_order(db.uow(), order_id, "", TEST)
    assert released.status is S.PACKED


async def test_an_event_for_an_order_not_held_here_changes_nothing() -> None:
    db = FakeOrders()
    changes = await reported(db, report(Report.PICKED, new_id()))
    assert changes.due_steps == set() and db.state.orders == {}
    changes = await reported(db, report(Report.PICKED, "not-an-id"))
    assert changes.due_steps == set()


async def test_a_pick_reported_for_a_cancelled_order_has_its_next_step_cancel_the_shipment() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    stored = db.order(order_id)
    stored.order.status, stored.stock_state = S.CANCELLED, StockState.RELEASED.value
    # logistics cancelled it already (the cancelled order's event): a late pick changes nothing
    stored.order.shipments = (replace(stored.order.shipments[0], stage=Stage.CANCELLED),)
    changes = await reported(db, report(Report.PICKED, order_id))
    assert changes.due_steps == set() and db.order(order_id).order.shipments[0].stage is Stage.CANCELLED
    # the order only knows of it now: it is still in the warehouse, and the next step cancels it
    db.order(order_id).order.shipments = ()
    changes = await reported(db, report(Report.PICKED, order_id))
    assert db.order(order_id).order.status is S.CANCELLED
    assert changes.due_steps == {order_id}
    assert db.order(order_id).step == Step.RELEASE.value


# ---- logistics as a source of the drift report ------------------------------------------------------


def test_logistics_word_on_an_order_is_its_least_advanced_shipment_not_cancelled() -> None:
    picked = Shipment("s-1", "WH-SH", "SF", stage=Stage.PICKED)
    created = Shipment("s-2", "WH-GZ", "ZTO")
    gone = Shipment("s-3", "WH-BJ", "ZTO", stage=Stage.CANCELLED)
    word = logistics_word((picked, created, gone))
    assert word is not None
    assert (word.source, word.raw_status) == ("LOGISTICS", "CREATED (WH-SH PICKED, WH-GZ CREATED)")
    assert word.means == {S.ALLOCATED, S.PICKING, S.ON_HOLD, S.EXCEPTION}
    delivered = logistics_word((replace(picked, stage=Stage.DELIVERED), gone))
    assert delivered is not None and S.DELIVERED in delivered.means and S.SHIPPED not in delivered.means
    assert logistics_word((gone,)) is None and logistics_word(()) is None


async def test_logistics_word_is_kept_as_the_order_follows_and_agrees_with_it() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await tell(db, report(Report.PICKED, order_id), report(Report.PACKED, order_id))
    word = db.state.source_status[(order_id, "LOGISTICS")]
    assert word.raw_status.startswith("PACKED") and db.order(order_id).order.status in word.means
    await tell(db, report(Report.WAYBILL, order_id, carrier="sf"), report(Report.SCANNED_OUT, order_id))
    await tell(db, report(Report.DELIVERED, order_id))
    word = db.state.source_status[(order_id, "LOGISTICS")]
    assert word.raw_status.startswith("DELIVERED") and db.order(order_id).order.status in word.means


async def test_a_parcel_picked_for_a_cancelled_order_is_logistics_drift() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    stored = db.order(order_id)
    stored.order.status, stored.stock_state = S.CANCELLED, StockState.RELEASED.value
    await reported(db, report(Report.PICKED, order_id))
    word = db.state.source_status[(order_id, "LOGISTICS")]
    assert word.raw_status == "PICKED (WH-SH PICKED)"
    assert S.CANCELLED not in word.means, "the drift report lists it"


async def test_a_tracking_node_on_the_way_does_not_rewrite_logistics_word() -> None:
    db = FakeOrders()
    order_id = await shipping_order(db, ONE_PARCEL)
    await tell(db, report(Report.PICKED, order_id))
    db.state.source_status.clear()
    await reported(db, report(Report.TRACKING, order_id, node="IN_TRANSIT", detail="到达上海"))
    assert (order_id, "LOGISTICS") not in db.state.source_status


# ---- the mapping to and from logistics -------------------------------------------------------------


def test_the_shipments_request_carries_the_full_address_priority_plan_and_one_parcel_per_warehouse() -> None:

    cold = ShippingPlan(
        "decision-7",
        (
            PlannedParcel("WH-SH", "SF-COLD", "cold", (("SKU-1", 2),)),
            PlannedParcel("WH-GZ", "ZTO", "economy", (("SKU-2", 1),)),
        ),
    )
    order = order_with(S.ALLOCATED, cold)
    order.warehouses, order.priority = ("WH-GZ", "WH-SH"), Priority.EXPEDITED
    request = mappers.shipments_request(order, cold)
    assert (request.order_id, request.customer_id, request.channel) == (order.order_id, "buyer-1", "TAOBAO")
    assert (request.address.recipient_name, request.address.phone, request.address.detail) == (
        "Li Lei",
        "13800000000",
        "1 Wensan Road",
    )
    assert (request.priority, request.decision_id) == (lpb.PRIORITY_EXPEDITED, "decision-7")
    assert not request.HasField("deadline")
    assert [(s.warehouse_id, s.carrier, s.service) for s in request.shipments] == [
        ("WH-GZ", "ZTO", "economy"),
        ("WH-SH", "SF-COLD", "cold"),
    ]
    gz, sh = request.shipments
    assert [(line.sku, line.title, line.quantity, line.goods_type) for line in gz.lines] == [
        ("SKU-2", "Cup", 1, "normal")
    ]
    assert [(line.sku, line.title, line.quantity, line.goods_type) for line in sh.lines] == [
        ("SKU-1", "Tea", 2, "cold_chain")
    ]


def test_the_shipments_request_carries_the_sla_deadline_and_a_fresh_category_as_fresh_goods() -> None:
    plan = ShippingPlan("decision-8", (PlannedParcel("WH-GZ", "ZTO", "economy", (("SKU-2", 1),)),))
    order = order_with(S.ALLOCATED, plan)
    order.warehouses = ("WH-GZ",)
    deadline = NOW + timedelta(minutes=45)
    fresh = SlaState(terms=sla.Terms("fresh", {}), stage=sla.Stage.FULFILMENT, warn_at=NOW, deadline=deadline)
    request = mappers.shipments_request(order, plan, fresh)
    assert request.deadline.ToDatetime(tzinfo=deadline.tzinfo) == deadline
    assert [line.goods_type for line in request.shipments[0].lines] == ["fresh"]
    # the delivery clock's deadline is not the warehouse's: no deadline then
    shipped = replace(fresh, stage=sla.Stage.DELIVERY)
    assert not mappers.shipments_request(order, plan, shipped).HasField("deadline")


def test_logistics_shipments_and_events_read_as_the_order_keeps_them() -> None:

    at = Timestamp()
    at.FromDatetime(NOW)
    shipment = lpb.Shipment(
        shipment_id="s-1",
        warehouse_id="WH-SH",
        carrier="SF",
        status=lpb.SHIPMENT_STATUS_IN_TRANSIT,
        waybill=lpb.Waybill(waybill_no="SF1"),
        scanned_out_at=at,
    )
    assert mappers.shipment_of(shipment) == Shipment("s-1", "WH-SH", "SF", Stage.SHIPPED, "SF1", NOW)
    tracked = lev.TrackingUpdated(
        order_id="o-1",
        shipment_id="s-1",
        waybill_no="SF1",
        carrier="sf",
        node=lpb.TRACKING_NODE_OUT_FOR_DELIVERY,
        description="派送中",
        area="杭州",
        scanned_at=at,
        source=lpb.TRACKING_SOURCE_POLL,
    )
    assert mappers.shipment_report(tracked) == ShipmentReport(
        Report.TRACKING,
        "o-1",
        "s-1",
        NOW,
        carrier="sf",
        waybill_no="SF1",
        node="OUT_FOR_DELIVERY",
        detail="派送中",
        area="杭州",
        via="poll",
    )
    kinds = [
        (lev.ShipmentPicked(order_id="o-1", shipment_id="s-1"), Report.PICKED),
        (lev.ShipmentPacked(order_id="o-1", shipment_id="s-1"), Report.PACKED),
        (lev.WaybillCreated(order_id="o-1", shipment_id="s-1", waybill_no="SF1"), Report.WAYBILL),
        (lev.WaybillFailed(order_id="o-1", shipment_id="s-1", reason="dead carrier"), Report.WAYBILL_FAILED),
        (lev.ShipmentScannedOut(order_id="o-1", shipment_id="s-1", waybill_no="SF1"), Report.SCANNED_OUT),
        (lev.ShipmentDelivered(order_id="o-1", shipment_id="s-1", delivered_at=at), Report.DELIVERED),
        (
            lev.ShipmentException(order_id="o-1", shipment_id="s-1", node=lpb.TRACKING_NODE_REFUSED),
            Report.EXCEPTION,
        ),
        (lev.ShipmentReturned(order_id="o-1", shipment_id="s-1", refused=True), Report.RETURNED),
    ]
    for event, kind in kinds:
        found = mappers.shipment_report(event)
        assert found is not None and (found.kind, found.order_id, found.shipment_id) == (kind, "o-1", "s-1")
    assert mappers.shipment_report(lev.ShipmentCreated(order_id="o-1")) is None


def test_the_plan_and_the_shipments_survive_the_row() -> None:

    order = order_with(
        S.PACKED,
        PLAN,
        (
            Shipment("s-1", "WH-SH", "SF", Stage.SHIPPED, "SF1", NOW),
            Shipment("s-2", "WH-GZ", "ZTO", Stage.PACKED, listed=False),
        ),
    )
    document = rows.shipping_document(order)
    assert document is not None
    assert (document["listed"], document["in_warehouse"]) == (True, True)

    stored = json.loads(rows.dumps(document))  # as Postgres gives the JSON back
    assert rows.plan_from(stored) == PLAN
    assert rows.shipments_from(stored) == order.shipments
    assert rows.shipping_document(order_with(S.ALLOCATED)) is None
    assert rows.plan_from(None) is None and rows.shipments_from(None) == ()


async def test_a_ship_step_refused_for_an_order_already_picking_freezes_it_rather_than_asking_forever() -> (
    None
):
    db, peers = FakeOrders(), ScriptedPeers()
    order_id = await shipping_order(db, listed_too=False)
    await reported(db, report(Report.PICKED, order_id))  # overtook the ship step
    stored = db.order(order_id)
    assert (stored.order.status, next_step(stored.order, StockState.COMMITTED)) == (S.PICKING, Step.SHIP)
    stored.schedule(Step.SHIP.value, NOW)
    peers.failures = [PeerRefused("logistics", grpc.StatusCode.FAILED_PRECONDITION, "order refused")]
    await drive(orchestrator(db, peers))
    stored = db.order(order_id)
    assert stored.order.status is S.EXCEPTION
    assert stored.order.status_reason == "picking, cannot be shipped: logistics: order refused"
    assert stored.step is None and peers.calls == ["create_shipments"]


def test_an_address_revised_after_the_shipments_were_opened_is_not_taken() -> None:
    order = order_with(S.ALLOCATED, PLAN, listed(("WH-SH", "SF", Stage.CREATED)))
    moved = Address("Li Lei", "13800000000", "CN", "Zhejiang", "Ningbo", "Yinzhou", "2 Tiantong Road")
    assert order.revise(replace(command(shipping_address=moved), channel_modified_at=NOW), NOW)
    assert order.shipping_address.city == "Hangzhou", "the parcel goes where logistics was told"
    order = order_with(S.ALLOCATED, PLAN)
    order.revise(replace(command(shipping_address=moved), channel_modified_at=NOW), NOW)
    assert order.shipping_address.city == "Ningbo", "no shipments yet: still editable"
