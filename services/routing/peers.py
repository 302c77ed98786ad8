"""Routing's gRPC clients of other services: live stock and the SKUs' catalogue entries from inventory,
in one call per plan, or per batch of plans made at the same moment."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from oms.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.kit.batching import Batcher
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
    """Inventory's live stock. Plans asked at the same moment (single PlanFulfilment calls arriving
    together) share one GetAvailability call: what they ask within `linger` seconds is asked at once,
    and each plan gets the rows it asked for."""

    def __init__(self, channel: grpc.aio.Channel, linger: float = 0.002, max_batch: int = 64) -> None:
        self.stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        self._asks: Batcher[tuple[tuple[str, ...], tuple[str, ...]], Stock] = Batcher(
            self._ask_together, linger, max_batch
        )

    async def availability(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock:
        """What a reservation may take now per (sku, warehouse): 0 below safety stock (not sellable)."""
        return await self._asks.submit((tuple(dict.fromkeys(skus)), tuple(warehouses)))

    async def _ask_together(
        self, asks: list[tuple[tuple[str, ...], tuple[str, ...]]]
    ) -> list[Stock | BaseException]:
        if len(asks) == 1:
            return [await self._ask(*asks[0])]
        skus = tuple(dict.fromkeys(sku for ask, _ in asks for sku in ask))
        warehouses = tuple(dict.fromkeys(w for _, ask in asks for w in ask))
        try:
            found = await self._ask(skus, warehouses)
        except InvalidArgument:  # one plan names a SKU inventory does not know: ask for each alone
            answers: list[Stock | BaseException] = []
            for ask in asks:
                try:
                    answers.append(await self._ask(*ask))
                except InvalidArgument as error:
                    answers.append(error)
            return answers
        return [_part(found, ask, wanted) for ask, wanted in asks]

    async def _ask(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock:
        try:
            reply = await self.stub.GetAvailability(
                inventory_pb2.GetAvailabilityRequest(skus=list(skus), warehouse_ids=list(warehouses))
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


def _part(found: Stock, skus: Sequence[str], warehouses: Sequence[str]) -> Stock:
    """The rows one plan asked for, out of the answer to several."""
    wanted, asked = set(warehouses), set(skus)
    return Stock(
        {
            (sku, warehouse): units
            for (sku, warehouse), units in found.levels.items()
            if warehouse in wanted and sku in asked
        },
        {sku: facts for sku, facts in found.catalogue.items() if sku in asked},
    )
