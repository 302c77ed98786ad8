"""Routing's gRPC clients of other services: live stock and the SKUs' catalogue entries from inventory,
in one batch call per plan."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.kit.errors import InvalidArgument, Unavailable
from services.kit.status import DETAILS_KEY, field_violations
from services.routing.domain.model import SkuFacts, Stock


def _goods_type(value: int) -> str:
    if value == inventory_pb2.GOODS_TYPE_UNSPECIFIED or value not in inventory_pb2.GoodsType.values():
        return "normal"
    return inventory_pb2.GoodsType.Name(value).removeprefix("GOODS_TYPE_").lower()


def refusal(error: grpc.aio.AioRpcError) -> InvalidArgument:
    """An INVALID_ARGUMENT answer as the field violations it carries in its status details."""
    details = next((value for key, value in error.trailing_metadata() or () if key == DETAILS_KEY), b"")
    violations = field_violations(details) if isinstance(details, bytes) and details else []
    if not violations:
        return InvalidArgument("skus", error.details() or "refused by inventory")
    return InvalidArgument.of(violations)


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
                raise refusal(error) from None
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
