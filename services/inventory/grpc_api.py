"""The thin gRPC servicer: proto in → command → handler → proto out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2 as pb
from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory import handlers, messages
from services.inventory.domain.model import GoodsType, Line, ReplenishmentStatus
from services.inventory.handlers import Policy, Shortage
from services.kit import idempotency, identity
from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InventoryService"].full_name
Ctx = Any


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, uow_factory: Callable[[], UnitOfWork], policy: Policy) -> None:
        self.uow = uow_factory
        self.policy = policy

    def _level(self, row: handlers.StockRow) -> pb.StockLevel:
        return messages.stock_level(row, self.policy.cap_basis_points)

    async def PutWarehouse(self, request: pb.PutWarehouseRequest, context: Ctx) -> pb.PutWarehouseResponse:
        await handlers.put_warehouse(self.uow(), request.warehouse_id, request.name)
        return pb.PutWarehouseResponse()

    async def PutSku(self, request: pb.PutSkuRequest, context: Ctx) -> pb.PutSkuResponse:
        row = await handlers.put_sku(
            self.uow(),
            request.sku,
            request.title,
            _goods_type(request.goods_type) or GoodsType.NORMAL,
            request.category,
            request.weight_g,
            request.customised,
        )
        return pb.PutSkuResponse(sku=messages.sku(row))

    async def GetSku(self, request: pb.GetSkuRequest, context: Ctx) -> pb.GetSkuResponse:
        return pb.GetSkuResponse(sku=messages.sku(await handlers.get_sku(self.uow(), request.sku)))

    async def ListSkus(self, request: pb.ListSkusRequest, context: Ctx) -> pb.ListSkusResponse:
        rows, token = await handlers.list_skus(
            self.uow(),
            _goods_type(request.goods_type),
            request.category,
            request.page.page_size,
            request.page.page_token,
        )
        return pb.ListSkusResponse(
            skus=[messages.sku(row) for row in rows], page=common_pb2.PageResponse(next_page_token=token)
        )

    async def SetStockPolicy(
        self, request: pb.SetStockPolicyRequest, context: Ctx
    ) -> pb.SetStockPolicyResponse:
        row = await handlers.set_stock_policy(
            self.uow(),
            self.policy,
            request.warehouse_id,
            request.sku,
            request.normal_level,
            request.safety_level,
        )
        return pb.SetStockPolicyResponse(stock=self._level(row))

    async def Reserve(self, request: pb.ReserveRequest, context: Ctx) -> pb.ReserveResponse:
        lines = [Line(line.sku, line.warehouse_id, line.quantity) for line in request.lines]
        if request.ttl_seconds < 0:
            raise InvalidArgument("ttl_seconds", "must not be negative")
        ttl = timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else None
        outcome = await handlers.reserve(self.uow, self.policy, request.order_id, lines, ttl)
        if not outcome.reserved:
            return pb.ReserveResponse(reserved=False, shortages=[_shortage(s) for s in outcome.shortages])
        return pb.ReserveResponse(
            reserved=True, reservation=messages.reservation(outcome.reservation, outcome.lines)
        )

    async def CommitReservation(
        self, request: pb.CommitReservationRequest, context: Ctx
    ) -> pb.CommitReservationResponse:
        row, lines = await handlers.commit_reservation(self.uow, self.policy, request.order_id)
        return pb.CommitReservationResponse(reservation=messages.reservation(row, lines))

    async def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: Ctx
    ) -> pb.ReleaseReservationResponse:
        row, lines = await handlers.release_reservation(
            self.uow, self.policy, request.order_id, request.reason
        )
        return pb.ReleaseReservationResponse(reservation=messages.reservation(row, lines))

    async def MoveReservation(
        self, request: pb.MoveReservationRequest, context: Ctx
    ) -> pb.MoveReservationResponse:
        row, lines, shortage = await handlers.move_reservation(
            self.uow,
            self.policy,
            request.order_id,
            request.sku,
            request.from_warehouse_id,
            request.to_warehouse_id,
        )
        reply = pb.MoveReservationResponse(
            moved=shortage is None, reservation=messages.reservation(row, lines)
        )
        if shortage is not None:
            reply.shortage.CopyFrom(_shortage(shortage))
        return reply

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: Ctx
    ) -> pb.GetReservationResponse:
        row, lines = await handlers.get_reservation(self.uow(), request.order_id)
        return pb.GetReservationResponse(reservation=messages.reservation(row, lines))

    async def GetAvailability(
        self, request: pb.GetAvailabilityRequest, context: Ctx
    ) -> pb.GetAvailabilityResponse:
        skus = await handlers.availability(
            self.uow(), self.policy, list(request.skus), list(request.warehouse_ids)
        )
        return pb.GetAvailabilityResponse(skus=skus)

    async def RecordReceipt(self, request: pb.RecordReceiptRequest, context: Ctx) -> pb.RecordReceiptResponse:
        row = await handlers.record_receipt(
            self.uow(),
            self.policy,
            request.receipt_id,
            request.warehouse_id,
            request.sku,
            request.quantity,
            owner=_owner(),
        )
        return pb.RecordReceiptResponse(stock=self._level(row))

    async def RecordStockCount(
        self, request: pb.RecordStockCountRequest, context: Ctx
    ) -> pb.RecordStockCountResponse:
        applied, row = await handlers.record_stock_count(
            self.uow(), self.policy, request.warehouse_id, request.sku, request.on_hand, request.version
        )
        return pb.RecordStockCountResponse(applied=applied, stock=self._level(row))

    async def AdjustStock(self, request: pb.AdjustStockRequest, context: Ctx) -> pb.AdjustStockResponse:
        if (
            request.reason == pb.ADJUSTMENT_REASON_UNSPECIFIED
            or request.reason not in pb.AdjustmentReason.values()
        ):
            raise InvalidArgument("reason", "is required (an AdjustmentReason)")
        reason = pb.AdjustmentReason.Name(request.reason).removeprefix("ADJUSTMENT_REASON_").lower()
        row = await handlers.adjust_stock(
            self.uow(),
            self.policy,
            request.adjustment_id,
            request.warehouse_id,
            request.sku,
            request.delta,
            reason,
            request.note,
            owner=_owner(),
        )
        return pb.AdjustStockResponse(stock=self._level(row))

    async def Restock(self, request: pb.RestockRequest, context: Ctx) -> pb.RestockResponse:
        rows = await handlers.restock(
            self.uow(),
            self.policy,
            request.return_id,
            request.order_id,
            request.warehouse_id,
            [(line.sku, line.quantity) for line in request.lines],
            owner=_owner(),
        )
        return pb.RestockResponse(stock=[self._level(row) for row in rows])

    async def ListLedger(self, request: pb.ListLedgerRequest, context: Ctx) -> pb.ListLedgerResponse:
        rows, token = await handlers.list_ledger(
            self.uow(),
            request.sku,
            request.warehouse_id,
            request.order_id,
            request.page.page_size,
            request.page.page_token,
        )
        return pb.ListLedgerResponse(
            entries=[
                pb.LedgerEntry(
                    entry_id=row.entry_id,
                    at=messages.timestamp(row.at),
                    sku=row.sku,
                    warehouse_id=row.warehouse_id,
                    kind=row.kind,
                    on_hand_delta=row.on_hand_delta,
                    reserved_delta=row.reserved_delta,
                    order_id=row.order_id,
                    reference=row.reference,
                    reason=row.reason,
                    trace_id=row.trace_id,
                )
                for row in rows
            ],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def CheckInvariants(
        self, request: pb.CheckInvariantsRequest, context: Ctx
    ) -> pb.CheckInvariantsResponse:
        rows, breaches = await handlers.check_invariants(self.uow())
        return pb.CheckInvariantsResponse(rows_checked=rows, breaches=breaches)

    async def ListReplenishmentOrders(
        self, request: pb.ListReplenishmentOrdersRequest, context: Ctx
    ) -> pb.ListReplenishmentOrdersResponse:
        status = _replenishment_status(request.status, allow_unspecified=True)
        rows, token = await handlers.list_replenishment_orders(
            self.uow(), status, request.sku, request.page.page_size, request.page.page_token
        )
        return pb.ListReplenishmentOrdersResponse(
            orders=[messages.replenishment(row) for row in rows],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def UpdateReplenishmentOrder(
        self, request: pb.UpdateReplenishmentOrderRequest, context: Ctx
    ) -> pb.UpdateReplenishmentOrderResponse:
        status = _replenishment_status(request.status, allow_unspecified=False)
        assert status is not None
        row = await handlers.update_replenishment_order(
            self.uow(), request.replenishment_order_id, status, request.note
        )
        return pb.UpdateReplenishmentOrderResponse(order=messages.replenishment(row))


def _owner() -> str:
    """The caller whose receipt, adjustment and return ids these are (they are chosen by the client)."""
    return idempotency.owner_of(identity.current())


def _shortage(shortage: Shortage) -> pb.Shortage:
    return pb.Shortage(
        sku=shortage.sku,
        warehouse_id=shortage.warehouse_id,
        requested=shortage.requested,
        available=shortage.available,
        reason=shortage.reason,
    )


def _goods_type(value: int) -> GoodsType | None:
    """None for unspecified; an enum number this build does not know is refused, never read as normal."""
    if value not in pb.GoodsType.values():
        raise InvalidArgument("goods_type", f"unknown GoodsType {value}")
    if value == pb.GOODS_TYPE_UNSPECIFIED:
        return None
    return GoodsType(pb.GoodsType.Name(value).removeprefix("GOODS_TYPE_").lower())


def _replenishment_status(value: int, *, allow_unspecified: bool) -> ReplenishmentStatus | None:
    if value == pb.REPLENISHMENT_STATUS_UNSPECIFIED and allow_unspecified:
        return None
    if value == pb.REPLENISHMENT_STATUS_UNSPECIFIED or value not in pb.ReplenishmentStatus.values():
        raise InvalidArgument("status", "must be a ReplenishmentStatus")
    return ReplenishmentStatus(pb.ReplenishmentStatus.Name(value).removeprefix("REPLENISHMENT_STATUS_"))
