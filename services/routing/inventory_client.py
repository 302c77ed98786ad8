"""Live stock from the inventory service, in one batch call per plan."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.kit.errors import InvalidArgument, Unavailable


class InventoryStock:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = inventory_pb2_grpc.InventoryServiceStub(channel)

    async def availability(
        self, skus: Sequence[str], warehouses: Sequence[str]
    ) -> dict[tuple[str, str], int]:
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
        return {
            (level.sku, level.warehouse_id): level.available
            for entry in reply.skus
            for level in entry.warehouses
        }
