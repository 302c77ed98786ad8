"""The orders service's view of routing, inventory and logistics: plain results, gRPC kept in here."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from oms.logistics.v1 import logistics_pb2, logistics_pb2_grpc
from oms.routing.v1 import routing_pb2, routing_pb2_grpc
from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import DomainError, Unavailable
from services.kit.status import DETAILS_KEY, code_of, field_violations
from services.orders import mappers
from services.orders.domain.model import Order, Priority
from services.orders.domain.shipping import NoParcelPlanned, PlannedParcel, Shipment, ShippingPlan
from services.orders.domain.sla import SlaState

# A peer that says this will say it again: the step ends at once with the reason on the order.
PERMANENT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)
# The peer is down, slow or shedding load, or the call was cut off on the way (CANCELLED: a server
# shutting down, a deadline met at the peer; ABORTED: a conflict there): wait it out without spending
# the step's attempts. Every step is idempotent at the peer, so asking again is safe.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)


@dataclass(frozen=True)
class Plan:
    # (warehouse, sku, quantity) for every shipment line; empty when parked
    lines: tuple[tuple[str, str, int], ...]
    parked_reason: str = ""
    parked_detail: str = ""
    decision_id: str = ""  # routing's decision: named back to it when its stock cannot be reserved
    # each shipment of the plan with the carrier routing chose for it
    parcels: tuple[PlannedParcel, ...] = ()

    @property
    def warehouses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(warehouse for warehouse, _, _ in self.lines))

    @property
    def shipping(self) -> ShippingPlan:
        return ShippingPlan(self.decision_id, self.parcels)

    @property
    def out_of_stock(self) -> bool:
        return self.parked_reason == OUT_OF_STOCK


# routing's parked reason (Decision.parked_reason) for an order no warehouse has the stock for
OUT_OF_STOCK = "out_of_stock"

# the order's priority in routing's words (orders' domain keeps its own enum)
PRIORITIES = {
    Priority.STANDARD: routing_pb2.PRIORITY_STANDARD,
    Priority.EXPEDITED: routing_pb2.PRIORITY_EXPEDITED,
    Priority.MEMBER: routing_pb2.PRIORITY_MEMBER,
}


class StockGone(Exception):
    """The reservation cannot be committed (expired or released): reserve again."""


class PeerRefused(DomainError):
    """A peer refused the request for good (unknown SKU, unknown province, …): retrying cannot help."""

    def __init__(
        self, peer: str, code: grpc.StatusCode, detail: str, violations: Sequence[tuple[str, str]] = ()
    ) -> None:
        # the first field the peer named (its message names it too) reads better for people as
        # "unknown SKU X (lines[0].sku)" than as "lines[0].sku: unknown SKU X"
        words = f"{violations[0][1]} ({violations[0][0]})" if violations else detail
        super().__init__(f"{peer}: {words or code.name.lower()}")
        self.peer = peer
        self.status = code


class PeerUnavailable(Unavailable):
    """A peer could not be reached or did not answer in time: an outage, waited out."""

    def __init__(self, peer: str, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{peer}: {code.name} {detail}".strip())
        self.peer = peer


class PeerFailed(Exception):
    """A peer failed in a way nobody planned for (INTERNAL, UNKNOWN, …): worth a few real attempts."""

    def __init__(self, peer: str, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{peer}: {code.name} {detail}".strip())
        self.peer = peer
        self.status = code


class Peers:
    def __init__(
        self,
        routing: grpc.aio.Channel,
        inventory: grpc.aio.Channel,
        reservation_ttl_seconds: int,
        deadline_seconds: float = 5.0,
        logistics: grpc.aio.Channel | None = None,
        linger: float = 0.003,
        max_batch: int = 64,
    ) -> None:
        self.routing = routing_pb2_grpc.RoutingServiceStub(routing)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(inventory)
        # None: orders is run without logistics (LOGISTICS_SERVICE_ADDR unset) and its orders stop at
        # ALLOCATED, for a warehouse system reporting through ReportSourceStatus to move them on
        self.logistics = None if logistics is None else logistics_pb2_grpc.LogisticsServiceStub(logistics)
        self.ttl = reservation_ttl_seconds
        # every call waits for its channel to be ready, up to this long (a peer restarting is not an error)
        self.deadline = deadline_seconds
        # the process manager's steps meet here: what they ask within a few milliseconds goes to the
        # peer in one batch call, answered per order (a peer without the batch call is asked one by one)
        self._plans: Batcher[tuple[routing_pb2.PlanFulfilmentRequest, str], Plan] = Batcher(
            self._plan_batch, linger, max_batch
        )
        self._reserves: Batcher[tuple[inventory_pb2.ReserveRequest, str], bool] = Batcher(
            self._reserve_batch, linger, max_batch
        )
        self._commits: Batcher[tuple[str, str], tuple[str, ...]] = Batcher(
            self._commit_batch, linger, max_batch
        )
        self.batched = {"routing": True, "inventory": True}

    def _options(self) -> dict[str, Any]:
        return {"timeout": self.deadline, "wait_for_ready": True}

    @property
    def ships(self) -> bool:
        """Orders are shipped through logistics: routing's parcels are kept for it when stock is reserved."""
        return self.logistics is not None

    async def plan(self, order: Order, refused_decision_id: str = "") -> Plan:
        """Routing's plan for the order; `refused_decision_id` names the plan whose reservation inventory
        refused last time, so routing decides again on live stock instead of repeating it."""
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
            priority=PRIORITIES[order.priority],
            refused_decision_id=refused_decision_id,
        )
        return await self._plans.submit((request, tracing.current_traceparent()))

    async def _plan_batch(
        self, items: list[tuple[routing_pb2.PlanFulfilmentRequest, str]]
    ) -> list[Plan | BaseException]:
        async def one(request: routing_pb2.PlanFulfilmentRequest) -> Plan:
            reply = await _call(self.routing.PlanFulfilment(request, **self._options()), "routing")
            return _plan_of(reply.decision)

        return await self._in_batch(
            "routing",
            items,
            lambda: self.routing.PlanFulfilments(
                routing_pb2.PlanFulfilmentsRequest(
                    requests=[request for request, _ in items], traceparents=_traces(items)
                ),
                **self._options(),
            ),
            ("decision", _plan_of),
            one,
        )

    async def _in_batch(
        self,
        peer: str,
        items: Sequence[tuple[Any, str]],
        batch_call: Callable[[], Any],
        answer: tuple[str, Callable[[Any], R]],
        one: Callable[[Any], Awaitable[R]],
    ) -> list[R | BaseException]:
        """One batch call to `peer` for the items, answered per item: the outcome's `answer` field
        (read by its function) or the item's error as the single call would have raised it. A peer
        that does not know the batch call (an older version, UNIMPLEMENTED) is asked item by item
        with `one`, from then on."""
        field, read = answer
        if self.batched[peer]:
            try:
                reply = await _call(batch_call(), peer)
                return [
                    read(getattr(outcome, field))
                    if outcome.WhichOneof("outcome") == field
                    else _item_error(peer, outcome.error)
                    for outcome in reply.outcomes
                ]
            except PeerFailed as error:
                if error.status is not grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self.batched[peer] = False
        return await _each([item for item, _ in items], one)

    async def reserve(self, order_id: str, plan: Plan) -> bool:
        request = inventory_pb2.ReserveRequest(
            order_id=order_id,
            lines=[
                inventory_pb2.ReservationLine(sku=sku, warehouse_id=warehouse, quantity=quantity)
                for warehouse, sku, quantity in plan.lines
            ],
            ttl_seconds=self.ttl,
        )
        return await self._reserves.submit((request, tracing.current_traceparent()))

    async def _reserve_batch(
        self, items: list[tuple[inventory_pb2.ReserveRequest, str]]
    ) -> list[bool | BaseException]:
        async def one(request: inventory_pb2.ReserveRequest) -> bool:
            reply = await _call(self.inventory.Reserve(request, **self._options()), "inventory")
            return bool(reply.reserved)

        return await self._in_batch(
            "inventory",
            items,
            lambda: self.inventory.ReserveBatch(
                inventory_pb2.ReserveBatchRequest(
                    requests=[request for request, _ in items], traceparents=_traces(items)
                ),
                **self._options(),
            ),
            ("reserved", lambda reply: bool(reply.reserved)),
            one,
        )

    async def commit(self, order_id: str) -> tuple[str, ...]:
        try:
            return await self._commits.submit((order_id, tracing.current_traceparent()))
        except PeerRefused as error:
            if error.status in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise StockGone(error.message) from None
            raise

    async def _commit_batch(self, items: list[tuple[str, str]]) -> list[tuple[str, ...] | BaseException]:
        async def one(order_id: str) -> tuple[str, ...]:
            reply = await _call(
                self.inventory.CommitReservation(
                    inventory_pb2.CommitReservationRequest(order_id=order_id), **self._options()
                ),
                "inventory",
            )
            return _warehouses_of(reply.reservation)

        return await self._in_batch(
            "inventory",
            items,
            lambda: self.inventory.CommitReservations(
                inventory_pb2.CommitReservationsRequest(
                    order_ids=[order_id for order_id, _ in items], traceparents=_traces(items)
                ),
                **self._options(),
            ),
            ("reservation", _warehouses_of),
            one,
        )

    async def release(self, order: Order, reason: str) -> None:
        try:
            await _call(
                self.inventory.ReleaseReservation(
                    inventory_pb2.ReleaseReservationRequest(order_id=order.order_id, reason=reason[:500]),
                    **self._options(),
                ),
                "inventory",
            )
        except PeerRefused as error:
            if error.status == grpc.StatusCode.NOT_FOUND:
                return
            if error.status != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            await self._restock(order)

    async def _restock(self, order: Order) -> None:
        """Committed stock of a cancelled order goes back on hand, once per warehouse (keyed restock)."""
        reservation = await _call(
            self.inventory.GetReservation(
                inventory_pb2.GetReservationRequest(order_id=order.order_id), **self._options()
            ),
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
                    ),
                    **self._options(),
                ),
                "inventory",
            )

    # ---- logistics ------------------------------------------------------------------------------

    def _logistics(self) -> logistics_pb2_grpc.LogisticsServiceStub:
        if self.logistics is None:  # a deployment that dropped logistics with shipments still open
            raise PeerUnavailable("logistics", grpc.StatusCode.UNAVAILABLE, "LOGISTICS_SERVICE_ADDR unset")
        return self.logistics

    async def create_shipments(self, order: Order, timer: SlaState | None = None) -> tuple[Shipment, ...]:
        """Logistics opens the allocated order's shipments, one per warehouse with routing's carrier for
        it, with the order's SLA deadline and category for the pick order. Idempotent at logistics on
        (order, warehouse): asking again after a timeout (the first call may have opened them) answers
        the same shipments."""
        stub = self._logistics()
        plan = order.shipping_plan
        if plan is None:
            raise PeerRefused("routing", grpc.StatusCode.FAILED_PRECONDITION, "no plan kept for the order")
        try:
            request = mappers.shipments_request(order, plan, timer)
        except NoParcelPlanned as error:
            raise PeerRefused("routing", grpc.StatusCode.FAILED_PRECONDITION, str(error)) from None
        reply = await _call(stub.CreateShipments(request, **self._options()), "logistics")
        return tuple(mappers.shipment_of(shipment) for shipment in reply.shipments)

    async def cancel_shipments(self, order: Order) -> tuple[Shipment, ...]:
        """A cancelled order's shipments still in the warehouse are cancelled at logistics (idempotent;
        none held: empty). One that left already is refused (FAILED_PRECONDITION): a person must look."""
        stub = self._logistics()
        try:
            reply = await _call(
                stub.CancelShipments(
                    logistics_pb2.CancelShipmentsRequest(
                        order_id=order.order_id, reason=(order.status_reason or "order cancelled")[:500]
                    ),
                    **self._options(),
                ),
                "logistics",
            )
        except PeerRefused as error:
            if error.status == grpc.StatusCode.NOT_FOUND:
                return ()
            raise
        return tuple(mappers.shipment_of(shipment) for shipment in reply.shipments)


def _plan_of(decision: routing_pb2.Decision) -> Plan:
    if decision.parked_reason:
        return Plan((), decision.parked_reason, decision.parked_detail, decision.decision_id)
    return Plan(
        tuple(
            (shipment.warehouse_id, line.sku, int(line.quantity))
            for shipment in decision.shipments
            for line in shipment.lines
        ),
        decision_id=decision.decision_id,
        parcels=tuple(
            PlannedParcel(
                shipment.warehouse_id,
                shipment.carrier,
                shipment.service,
                tuple((line.sku, int(line.quantity)) for line in shipment.lines),
            )
            for shipment in decision.shipments
        ),
    )


def _warehouses_of(reservation: inventory_pb2.Reservation) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.warehouse_id for line in reservation.lines))


def _traces(items: Sequence[tuple[Any, str]]) -> dict[str, str]:
    """order_id → traceparent, for the orders whose step runs in a trace."""
    traces = {}
    for request, traceparent in items:
        if traceparent:
            traces[request if isinstance(request, str) else request.order_id] = traceparent
    return traces


T = TypeVar("T")
R = TypeVar("R")


async def _each(items: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R | BaseException]:
    """One call per item, concurrently, each answered on its own (a peer without the batch call)."""
    return list(await asyncio.gather(*(call(item) for item in items), return_exceptions=True))


def _item_error(peer: str, error: common_pb2.ItemError) -> Exception:
    """A refused item of a batch call, as the same exception its single call would have raised."""
    code = code_of(error.code)
    detail = error.message
    if code in PERMANENT:
        violations = [(violation.field, violation.description) for violation in error.violations]
        return PeerRefused(peer, code, detail, violations)
    if code in TRANSIENT:
        return PeerUnavailable(peer, code, detail)
    return PeerFailed(peer, code, detail)


def _quantities(order: Order) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for line in order.lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return list(totals.items())


async def _call(call: Any, peer: str) -> Any:
    """Await a peer's answer; its failure becomes permanent (PeerRefused), an outage (PeerUnavailable)
    or unexpected (PeerFailed), so the process manager can treat each as it deserves."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        code, detail = error.code(), error.details() or ""
        if code in PERMANENT:
            raise PeerRefused(peer, code, detail, _violations(error)) from None
        if code in TRANSIENT:
            raise PeerUnavailable(peer, code, detail) from None
        raise PeerFailed(peer, code, detail) from None


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The BadRequest field violations a refusal carries in its status details, if any."""
    details = next((value for key, value in error.trailing_metadata() or () if key == DETAILS_KEY), b"")
    return field_violations(details) if isinstance(details, bytes) and details else []
