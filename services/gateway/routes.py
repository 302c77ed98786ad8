"""The routing table: which service owns each public gRPC service, by the env var naming its address.

Adding a public RPC to an existing service needs no change here; a new public service needs one entry.
"""

from __future__ import annotations

PUBLIC_SERVICES: dict[str, str] = {
    "oms.orders.v1.OrdersService": "ORDERS_SERVICE_ADDR",
    "oms.inventory.v1.InventoryService": "INVENTORY_SERVICE_ADDR",
    "oms.routing.v1.RoutingService": "ROUTING_SERVICE_ADDR",
    "oms.logistics.v1.LogisticsService": "LOGISTICS_SERVICE_ADDR",
    "oms.aftersales.v1.AftersalesService": "AFTERSALES_SERVICE_ADDR",
}


# what Envoy transcodes: every forwarded service and the gateway's own
GATEWAY_SERVICE = "oms.gateway.v1.GatewayService"
EDGE_SERVICES = (*PUBLIC_SERVICES, GATEWAY_SERVICE)


def public_proto_modules() -> None:
    """Import the public contracts so reflection and the proxy can describe them."""
    from oms.aftersales.v1 import aftersales_pb2  # noqa: F401
    from oms.gateway.v1 import gateway_pb2  # noqa: F401
    from oms.inventory.v1 import inventory_pb2  # noqa: F401
    from oms.logistics.v1 import logistics_pb2  # noqa: F401
    from oms.orders.v1 import orders_pb2  # noqa: F401
    from oms.routing.v1 import routing_pb2  # noqa: F401
