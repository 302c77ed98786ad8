"""Pick priority: expedited first, then fresh and cold-chain goods, then the earliest deadline."""

from __future__ import annotations

from datetime import timedelta

from services.logistics.domain.model import Priority
from services.logistics.domain.picking import in_pick_order
from tests.unit.logistics.builders import T0, shipment


def test_expedited_then_perishable_then_deadline_then_oldest() -> None:
    late = shipment("late", deadline=T0 + timedelta(hours=5))
    soon = shipment("soon", deadline=T0 + timedelta(hours=1))
    no_deadline = shipment("none", created_at=T0 - timedelta(hours=3))
    cold = shipment("cold", goods_type="cold_chain", deadline=T0 + timedelta(hours=9))
    fresh = shipment("fresh", goods_type="fresh", deadline=T0 + timedelta(hours=8))
    rush = shipment("rush", priority=Priority.EXPEDITED, deadline=T0 + timedelta(hours=10))
    rush_cold = shipment("rush-cold", priority=Priority.EXPEDITED, goods_type="cold_chain")
    ordered = in_pick_order([late, no_deadline, soon, cold, fresh, rush, rush_cold])
    assert [s.shipment_id for s in ordered] == ["rush-cold", "rush", "fresh", "cold", "soon", "late", "none"]


def test_a_member_order_is_not_expedited() -> None:
    member = shipment("member", priority=Priority.MEMBER, deadline=T0 + timedelta(hours=2))
    soon = shipment("soon", deadline=T0 + timedelta(hours=1))
    assert [s.shipment_id for s in in_pick_order([member, soon])] == ["soon", "member"]
