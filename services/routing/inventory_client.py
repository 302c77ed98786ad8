"""Live stock and the SKUs' catalogue entries from the inventory service, in one batch call per plan."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.kit.errors import InvalidArgument, Unavailable
from services.routing.domain.model import SkuFacts
from services.routing.handlers import Stock


def _goods_type(value: int) -> str:
    if value == inventory_pb2.GOODS_TYPE_UNSPECIFIED or value not in inventory_pb2.GoodsType.values():
        return "normal"
    return inventory_pb2.GoodsType.Name(value).removeprefix("GOODS_TYPE_").lower()


class InventoryStock:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = inventory_pb2_grpc.InventoryServiceStub(channel)

    async def availability(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock:
        """What a reservation may take now per (sku, warehouse): 0 below safety stock (not sellable)."""
        try:
            reply = await self.stub.GetAvailability(
                inventory_pb2.GetAvailabilityRequest(
                    skus=list(dict.fromkeys(skus)), warehouse_ids=list(warehouses)
                )
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                field, _, problem = (error.details() or "").partition(": ")
                raise InvalidArgument(field, problem) from None
            raise Unavailable(f"inventory unavailable: {error.code().name}") from None
        return Stock(
            {
                (level.sku, level.warehouse_id): level.available
                for entry in reply.skus
                for level in entry.warehouses
            },
            {
                entry.sku: SkuFacts(_goods_type(entry.catalogue.goods_type), entry.catalogue.weight_g)
                for entry in reply.skus
            },
        )
