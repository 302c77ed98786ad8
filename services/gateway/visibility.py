"""Whether orders shows a scoped caller an order: the one test behind every `Reach.ORDER` method.

Routing's decisions, inventory's reservations and the alert stream answer about an order but do not
know whose it is (a customer's, an agent's customers', a channel's): orders does. So the gateway asks
orders, under the caller's own assertion, before it forwards such a call or shows such an alert; an
order orders would not show is answered exactly like an unknown one. Staff and services are unscoped
and cost nothing here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.gateway.gate import Caller, Gate, is_scoped
from services.kit.errors import NotFound

ORDERS_AUDIENCE = "orders"


class OrderVisibility:
    def __init__(self, gate: Gate, orders: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self.gate = gate
        self.orders = orders_pb2_grpc.OrdersServiceStub(orders)
        self.timeout = timeout_seconds

    async def sees(self, caller: Caller, order_id: str) -> bool:
        """True when the caller may see the order (always, for unscoped callers). Orders' own refusal
        of a malformed id (INVALID_ARGUMENT) and its outages reach the caller as they are."""
        if not is_scoped(caller.principal):
            return True
        if not order_id:
            return False
        try:
            await self.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=order_id),
                metadata=self.gate.upstream_metadata(caller, {}, ORDERS_AUDIENCE),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def check(self, caller: Caller, order_id: str) -> None:
        """NOT_FOUND, worded like orders' own, for an order outside the caller's scope."""
        if not await self.sees(caller, order_id):
            raise NotFound(f"order {order_id} not found")


class SeenOrders:
    """One alert stream's memory of which orders its watcher may see, for `ttl_seconds`: a burst of
    alerts about one order asks orders once, and a changed assignment is honoured within the TTL."""

    def __init__(
        self,
        visibility: OrderVisibility,
        caller: Caller,
        ttl_seconds: float = 10.0,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.visibility = visibility
        self.caller = caller
        self.ttl = ttl_seconds
        self.size = size
        self.clock = clock
        self.seen: dict[str, tuple[bool, float]] = {}

    async def sees(self, order_id: str) -> bool:
        if not is_scoped(self.caller.principal):
            return True
        if not order_id:
            # an alert about no order concerns no customer of a scoped watcher: staff only
            return False
        now = self.clock()
        known = self.seen.get(order_id)
        if known is not None and known[1] > now:
            return known[0]
        try:
            visible = await self.visibility.sees(self.caller, order_id)
        except grpc.aio.AioRpcError:
            # orders unreachable: withhold (the alert is not lost for staff; this watcher is scoped)
            return False
        if len(self.seen) >= self.size:
            self.seen.clear()
        self.seen[order_id] = (visible, now + self.ttl)
        return visible
