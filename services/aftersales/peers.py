"""After-sales' view of orders and inventory: plain results, gRPC kept in here. Each call is this
service's own (its identity), never the caller's: the gateway has already decided who may ask."""

from __future__ import annotations

import asyncio
import time

import grpc

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.aftersales import mappers
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.handlers.ports import RestockJob
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.kit.status import DETAILS_KEY, field_violations

TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)
# how long an agent's customers are trusted as orders said them
AGENT_CACHE_SECONDS = 30.0
# how long a SKU's "customised" flag is trusted as inventory's catalogue said it
SKU_CACHE_SECONDS = 60.0
MAX_CACHED_SKUS = 50_000


def _translated(peer: str, error: grpc.aio.AioRpcError, what: str) -> Exception:
    code = error.code()
    if code in TRANSIENT:
        return Unavailable(f"{peer} is unavailable: {error.details() or code.name}")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(what)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # the peer's own field violations, read from its status details (never parsed out of its text)
        details = next((value for key, value in error.trailing_metadata() or () if key == DETAILS_KEY), b"")
        violations = field_violations(details) if isinstance(details, bytes) and details else []
        return (
            InvalidArgument.of(violations) if violations else InvalidArgument("order_id", "refused by orders")
        )
    return FailedPrecondition(f"{peer} refused: {error.details() or code.name}")


class OrdersPeer:
    def __init__(self, orders: grpc.aio.Channel, inventory: grpc.aio.Channel) -> None:
        self.orders = orders_pb2_grpc.OrdersServiceStub(orders)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(inventory)
        self._agents: dict[str, tuple[float, frozenset[str]]] = {}
        self._skus: dict[str, tuple[float, bool | None]] = {}

    async def snapshot(self, order_id: str) -> OrderSnapshot:
        """The order now, with its applied payment and which of its SKUs are customised."""
        missing = f"order {order_id[:64]} not found"
        try:
            found, payments = await asyncio.gather(
                self.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id)),
                self.orders.ListPayments(orders_pb2.ListPaymentsRequest(order_id=order_id)),
            )
        except grpc.aio.AioRpcError as error:
            raise _translated("orders", error, missing) from None
        customised = await self._customised(sorted({line.sku for line in found.order.lines}))
        return mappers.snapshot(found.order, list(payments.payments), customised)

    async def _customised(self, skus: list[str]) -> dict[str, bool]:
        """What inventory's catalogue says of each SKU (kept a minute: it rarely changes); one it does
        not know stays unknown (None), and that answer is kept the same minute (an order naming SKUs
        the catalogue lacks would otherwise cost a call per SKU on every ticket)."""
        now = time.monotonic()

        async def one(sku: str) -> tuple[str, bool | None]:
            cached = self._skus.get(sku)
            if cached is not None and cached[0] > now:
                return sku, cached[1]
            try:
                reply = await self.inventory.GetSku(inventory_pb2.GetSkuRequest(sku=sku))
                customised: bool | None = reply.sku.customised
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise _translated("inventory", error, f"sku {sku}") from None
                customised = None
            if len(self._skus) >= MAX_CACHED_SKUS:
                self._skus.clear()
            self._skus[sku] = (now + SKU_CACHE_SECONDS, customised)
            return sku, customised

        answers = await asyncio.gather(*(one(sku) for sku in skus))
        return {sku: value for sku, value in answers if value is not None}

    async def agent_customers(self, agent_id: str) -> frozenset[str]:
        cached = self._agents.get(agent_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            reply = await self.orders.ListAgentCustomers(
                orders_pb2.ListAgentCustomersRequest(agent_id=agent_id)
            )
        except grpc.aio.AioRpcError as error:
            raise _translated("orders", error, f"agent {agent_id[:64]}") from None
        customers = frozenset(reply.buyer_ids)
        self._agents[agent_id] = (time.monotonic() + AGENT_CACHE_SECONDS, customers)
        return customers

    async def place_replacement(self, job: RestockJob) -> str:
        """The exchange's replacement as an own-shop order of the same customer to the same address:
        the SKUs that came back, nothing to pay (so orders takes it as paid, reserves its stock and has
        logistics ship it). Idempotent: the order number is the job's (`EX<ticket id>`)."""
        try:
            original = (await self.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=job.order_id))).order
            titles = {line.sku: line.title for line in original.lines}
            currency = original.total.currency_code or "CNY"
            request = orders_pb2.IngestOrderRequest(
                channel=orders_pb2.CHANNEL_OWN_SHOP,
                channel_order_id=job.return_id,
                buyer_id=original.buyer_id,
                lines=[
                    orders_pb2.OrderLine(
                        sku=sku,
                        title=titles.get(sku, sku),
                        quantity=quantity,
                        unit_price=common_pb2.Money(currency_code=currency, amount_minor=0),
                    )
                    for sku, quantity in job.lines
                ],
                shipping_address=original.shipping_address,
                shipping_fee=common_pb2.Money(currency_code=currency, amount_minor=0),
                buyer_note=f"replacement for order {job.order_id} (after-sales ticket {job.ticket_id})",
            )
            placed = await self.orders.IngestOrder(request)
        except grpc.aio.AioRpcError as error:
            raise _translated("orders", error, f"order {job.order_id[:64]}") from None
        return placed.order.order_id


class InventoryPeer:
    def __init__(self, inventory: grpc.aio.Channel) -> None:
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(inventory)

    async def restock(self, job: RestockJob) -> None:
        request = inventory_pb2.RestockRequest(
            return_id=job.return_id,
            order_id=job.order_id,
            warehouse_id=job.warehouse_id,
            lines=[inventory_pb2.RestockLine(sku=sku, quantity=quantity) for sku, quantity in job.lines],
        )
        try:
            await self.inventory.Restock(request)
        except grpc.aio.AioRpcError as error:
            raise _translated("inventory", error, f"restock {job.return_id}") from None
