"""After-sales' view of its peers over real gRPC: what inventory's catalogue says of a SKU is kept a
minute, a SKU the catalogue does not know included, so a ticket costs no call per SKU."""

from __future__ import annotations

from typing import Any

import grpc

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.aftersales.peers import OrdersPeer
from services.kit import grpc_client
from tests import identity


class Catalogue(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def GetSku(
        self, request: inventory_pb2.GetSkuRequest, context: Any
    ) -> inventory_pb2.GetSkuResponse:
        self.asked.append(request.sku)
        if request.sku != "TEA":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"sku {request.sku} not found")
        return inventory_pb2.GetSkuResponse(sku=inventory_pb2.Sku(sku="TEA", customised=True))


async def test_known_and_unknown_skus_are_asked_once_a_minute() -> None:
    catalogue = Catalogue()
    async with identity.served(
        "oms.inventory.v1.InventoryService",
        lambda server: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(catalogue, server),
    ) as address:
        channel = grpc_client.channel(address, identity=identity.service_identity("aftersales"))
        peer = OrdersPeer(channel, channel)
        try:
            first = await peer._customised(["NOPE", "TEA"])
            again = await peer._customised(["NOPE", "TEA"])
        finally:
            await channel.close()
    assert first == again == {"TEA": True}  # an unknown SKU is left out (not known), not told False
    assert sorted(catalogue.asked) == ["NOPE", "TEA"]
