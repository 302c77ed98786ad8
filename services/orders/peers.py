"""The orders service's view of routing and inventory: plain results, gRPC kept in here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import grpc

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from oms.routing.v1 import routing_pb2, routing_pb2_grpc
from services.kit.errors import Unavailable
from services.orders.domain.model import Order


@dataclass(frozen=True)
class Plan:
    # (warehouse, sku, quantity) for every shipment line; empty when parked
    lines: tuple[tuple[str, str, int], ...]
    parked_reason: str = ""
    parked_detail: str = ""

    @property
    def warehouses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(warehouse for warehouse, _, _ in self.lines))


class StockGone(Exception):
    """The reservation cannot be committed (expired or released): reserve again."""


class Peers:
    def __init__(
        self, routing: grpc.aio.Channel, inventory: grpc.aio.Channel, reservation_ttl_seconds: int
    ) -> None:
        self.routing = routing_pb2_grpc.RoutingServiceStub(routing)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(inventory)
        self.ttl = reservation_ttl_seconds

    async def plan(self, order: Order) -> Plan:
        address = order.shipping_address
        request = routing_pb2.PlanFulfilmentRequest(
            order_id=order.order_id,
            address=common_pb2.Address(
                country_code=address.country_code,
                province=address.province,
                city=address.city,
                district=address.district,
            ),
            lines=[routing_pb2.RouteLine(sku=sku, quantity=quantity) for sku, quantity in _quantities(order)],
        )
        reply = await _call(self.routing.PlanFulfilment(request), "routing")
        decision = reply.decision
        if decision.parked_reason:
            return Plan((), decision.parked_reason, decision.parked_detail)
        return Plan(
            tuple(
                (shipment.warehouse_id, line.sku, int(line.quantity))
                for shipment in decision.shipments
                for line in shipment.lines
            )
        )

    async def reserve(self, order_id: str, plan: Plan) -> bool:
        reply = await _call(
            self.inventory.Reserve(
                inventory_pb2.ReserveRequest(
                    order_id=order_id,
                    lines=[
                        inventory_pb2.ReservationLine(sku=sku, warehouse_id=warehouse, quantity=quantity)
                        for warehouse, sku, quantity in plan.lines
                    ],
                    ttl_seconds=self.ttl,
                )
            ),
            "inventory",
        )
        return reply.reserved

    async def commit(self, order_id: str) -> tuple[str, ...]:
        try:
            reply = await self.inventory.CommitReservation(
                inventory_pb2.CommitReservationRequest(order_id=order_id)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise StockGone(error.details() or "") from None
            raise Unavailable(f"inventory: {error.code().name} {error.details()}") from None
        return tuple(dict.fromkeys(line.warehouse_id for line in reply.reservation.lines))

    async def release(self, order: Order, reason: str) -> None:
        try:
            await self.inventory.ReleaseReservation(
                inventory_pb2.ReleaseReservationRequest(order_id=order.order_id, reason=reason[:500])
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise Unavailable(f"inventory: {error.code().name} {error.details()}") from None
            await self._restock(order)

    async def _restock(self, order: Order) -> None:
        """Committed stock of a cancelled order goes back on hand, once per warehouse (keyed restock)."""
        reservation = await _call(
            self.inventory.GetReservation(inventory_pb2.GetReservationRequest(order_id=order.order_id)),
            "inventory",
        )
        per_warehouse: dict[str, list[inventory_pb2.RestockLine]] = defaultdict(list)
        for line in reservation.reservation.lines:
            per_warehouse[line.warehouse_id].append(
                inventory_pb2.RestockLine(sku=line.sku, quantity=line.quantity)
            )
        for warehouse, lines in per_warehouse.items():
            await _call(
                self.inventory.Restock(
                    inventory_pb2.RestockRequest(
                        return_id=f"cancel:{order.order_id}:{warehouse}"[:64],
                        order_id=order.order_id,
                        warehouse_id=warehouse,
                        lines=lines,
                    )
                ),
                "inventory",
            )


def _quantities(order: Order) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for line in order.lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return list(totals.items())


async def _call(call: Any, peer: str) -> Any:
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise Unavailable(f"{peer}: {error.code().name} {error.details()}") from None
