"""The thin gRPC servicer: proto in → mappers → handler or view → mappers → proto out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2 as pb
from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory import handlers, mappers, metrics, views
from services.inventory.domain.model import GoodsType, StockRow, stock_level
from services.inventory.domain.policy import Policy
from services.inventory.store import InventoryUnitOfWork
from services.kit import batching, idempotency, identity

BATCH_CONCURRENCY = 16  # items of a batch call in flight at once (each holds a pooled connection)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InventoryService"].full_name
Ctx = Any


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, uow_factory: Callable[[], InventoryUnitOfWork], policy: Policy) -> None:
        self.uow = uow_factory
        self.policy = policy
        self.desk = handlers.ReserveDesk(uow_factory, policy)

    def _level(self, row: StockRow) -> pb.StockLevel:
        return mappers.stock_level(stock_level(row, self.policy.cap_basis_points))

    async def PutWarehouse(self, request: pb.PutWarehouseRequest, context: Ctx) -> pb.PutWarehouseResponse:
        await handlers.put_warehouse(self.uow(), request.warehouse_id, request.name)
        return pb.PutWarehouseResponse()

    async def PutSku(self, request: pb.PutSkuRequest, context: Ctx) -> pb.PutSkuResponse:
        entry = await handlers.put_sku(
            self.uow(),
            request.sku,
            request.title,
            mappers.goods_type_in(request.goods_type) or GoodsType.NORMAL,
            request.category,
            request.weight_g,
            request.customised,
        )
        return pb.PutSkuResponse(sku=mappers.sku(entry))

    async def GetSku(self, request: pb.GetSkuRequest, context: Ctx) -> pb.GetSkuResponse:
        return pb.GetSkuResponse(sku=mappers.sku(await handlers.get_sku(self.uow(), request.sku)))

    async def ListSkus(self, request: pb.ListSkusRequest, context: Ctx) -> pb.ListSkusResponse:
        entries, token = await views.list_skus(
            self.uow(),
            mappers.goods_type_in(request.goods_type),
            request.category,
            request.page.page_size,
            request.page.page_token,
        )
        return pb.ListSkusResponse(
            skus=[mappers.sku(entry) for entry in entries],
            page=common_pb2.PageResponse(next_page_token=token),
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

    async def SetStockBuckets(
        self, request: pb.SetStockBucketsRequest, context: Ctx
    ) -> pb.SetStockBucketsResponse:
        split = await handlers.set_stock_buckets(
            self.uow(), self.policy, request.warehouse_id, request.sku, request.buckets
        )
        return mappers.stock_buckets(split, stock_level(split.row, self.policy.cap_basis_points))

    async def Reserve(self, request: pb.ReserveRequest, context: Ctx) -> pb.ReserveResponse:
        lines = mappers.lines_in(request.lines)
        ttl = mappers.ttl_in(request.ttl_seconds)
        outcome = await self.desk.reserve(request.order_id, lines, ttl)
        metrics.count_reservation(outcome.reserved and outcome.reservation is not None)
        if not outcome.reserved or outcome.reservation is None:
            return pb.ReserveResponse(
                reserved=False, shortages=[mappers.shortage(s) for s in outcome.shortages]
            )
        return pb.ReserveResponse(
            reserved=True, reservation=mappers.reservation(outcome.reservation, outcome.lines)
        )

    async def ReserveBatch(self, request: pb.ReserveBatchRequest, context: Ctx) -> pb.ReserveBatchResponse:
        """Each order as Reserve would answer it, a few at a time, each in its own transaction."""
        items = list(request.requests)
        keys = [item.order_id for item in items]
        batching.distinct(keys, "requests")
        answers = await batching.answer_each(
            items,
            lambda item: self.Reserve(item, context),
            BATCH_CONCURRENCY,
            batching.traceparents_for(keys, request.traceparents),
            "inventory.reserve",
        )
        return pb.ReserveBatchResponse(
            outcomes=[
                pb.ReserveOutcome(order_id=key, error=mappers.item_error(answer))
                if isinstance(answer, Exception)
                else pb.ReserveOutcome(order_id=key, reserved=answer)
                for key, answer in zip(keys, answers, strict=True)
            ]
        )

    async def CommitReservations(
        self, request: pb.CommitReservationsRequest, context: Ctx
    ) -> pb.CommitReservationsResponse:
        """Each order as CommitReservation would answer it, a few at a time."""
        keys = list(request.order_ids)
        batching.distinct(keys, "order_ids")
        answers = await batching.answer_each(
            keys,
            lambda key: handlers.commit_reservation(self.uow, self.policy, key),
            BATCH_CONCURRENCY,
            batching.traceparents_for(keys, request.traceparents),
            "inventory.commit",
        )
        return pb.CommitReservationsResponse(
            outcomes=[
                pb.CommitOutcome(order_id=key, error=mappers.item_error(answer))
                if isinstance(answer, Exception)
                else pb.CommitOutcome(order_id=key, reservation=mappers.reservation(*answer))
                for key, answer in zip(keys, answers, strict=True)
            ]
        )

    async def CommitReservation(
        self, request: pb.CommitReservationRequest, context: Ctx
    ) -> pb.CommitReservationResponse:
        reservation, lines = await handlers.commit_reservation(self.uow, self.policy, request.order_id)
        return pb.CommitReservationResponse(reservation=mappers.reservation(reservation, lines))

    async def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: Ctx
    ) -> pb.ReleaseReservationResponse:
        reservation, lines = await handlers.release_reservation(
            self.uow, self.policy, request.order_id, request.reason
        )
        return pb.ReleaseReservationResponse(reservation=mappers.reservation(reservation, lines))

    async def MoveReservation(
        self, request: pb.MoveReservationRequest, context: Ctx
    ) -> pb.MoveReservationResponse:
        reservation, lines, shortage = await handlers.move_reservation(
            self.uow,
            self.policy,
            request.order_id,
            request.sku,
            request.from_warehouse_id,
            request.to_warehouse_id,
        )
        reply = pb.MoveReservationResponse(
            moved=shortage is None, reservation=mappers.reservation(reservation, lines)
        )
        if shortage is not None:
            reply.shortage.CopyFrom(mappers.shortage(shortage))
        return reply

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: Ctx
    ) -> pb.GetReservationResponse:
        reservation, lines = await handlers.get_reservation(self.uow(), request.order_id)
        return pb.GetReservationResponse(reservation=mappers.reservation(reservation, lines))

    async def GetAvailability(
        self, request: pb.GetAvailabilityRequest, context: Ctx
    ) -> pb.GetAvailabilityResponse:
        skus = await views.availability(
            self.uow(), self.policy, list(request.skus), list(request.warehouse_ids)
        )
        return pb.GetAvailabilityResponse(skus=[mappers.availability(sku) for sku in skus])

    async def RecordReceipt(self, request: pb.RecordReceiptRequest, context: Ctx) -> pb.RecordReceiptResponse:
        row = await handlers.record_receipt(
            self.uow(),
            self.policy,
            request.receipt_id,
            request.warehouse_id,
            request.sku,
            request.quantity,
            owner=_owner(),
            unit_cost=request.unit_cost_minor,
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
        row = await handlers.adjust_stock(
            self.uow(),
            self.policy,
            request.adjustment_id,
            request.warehouse_id,
            request.sku,
            request.delta,
            mappers.adjustment_reason_in(request.reason),
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
        entries, token = await views.list_ledger(
            self.uow(),
            request.sku,
            request.warehouse_id,
            request.order_id,
            request.page.page_size,
            request.page.page_token,
        )
        return pb.ListLedgerResponse(
            entries=[mappers.ledger_entry(entry) for entry in entries],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def CheckInvariants(
        self, request: pb.CheckInvariantsRequest, context: Ctx
    ) -> pb.CheckInvariantsResponse:
        rows, breaches = await handlers.check_invariants(self.uow())
        return pb.CheckInvariantsResponse(rows_checked=rows, breaches=[mappers.breach(b) for b in breaches])

    async def ListReplenishmentOrders(
        self, request: pb.ListReplenishmentOrdersRequest, context: Ctx
    ) -> pb.ListReplenishmentOrdersResponse:
        status = mappers.replenishment_status_in(request.status, allow_unspecified=True)
        orders, token = await views.list_replenishment_orders(
            self.uow(), status, request.sku, request.page.page_size, request.page.page_token
        )
        return pb.ListReplenishmentOrdersResponse(
            orders=[mappers.replenishment(order) for order in orders],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def UpdateReplenishmentOrder(
        self, request: pb.UpdateReplenishmentOrderRequest, context: Ctx
    ) -> pb.UpdateReplenishmentOrderResponse:
        status = mappers.replenishment_status_in(request.status, allow_unspecified=False)
        assert status is not None
        order = await handlers.update_replenishment_order(
            self.uow(), request.replenishment_order_id, status, request.note
        )
        return pb.UpdateReplenishmentOrderResponse(order=mappers.replenishment(order))


def _owner() -> str:
    """The caller whose receipt, adjustment and return ids these are (they are chosen by the client)."""
    return idempotency.owner_of(identity.current())
