"""The thin gRPC servicer: proto in → mappers → use case or view → mappers → proto out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.api import httpbody_pb2

from oms.common.v1 import common_pb2
from oms.logistics.v1 import logistics_pb2 as pb
from oms.logistics.v1 import logistics_pb2_grpc
from services.kit import batching
from services.kit.errors import NotFound
from services.logistics import mappers, printing
from services.logistics.domain.anomalies import AnomalyRules
from services.logistics.domain.carriers import ACCOUNTS, BreakerState, routing_codes
from services.logistics.domain.docks import Docks
from services.logistics.domain.tracking import PollPolicy
from services.logistics.handlers import picking, shipments, tracking, waybills
from services.logistics.handlers.ports import Carriers, UnitOfWork
from services.logistics.views import LogisticsViews

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LogisticsService"].full_name
Ctx = Any


def _taken(taken: tracking.PushTaken) -> pb.ReportTrackingResponse:
    content_type, body = taken.reply
    return pb.ReportTrackingResponse(
        nodes_recorded=taken.nodes_recorded,
        quarantine_id=taken.quarantine_id,
        reply=httpbody_pb2.HttpBody(content_type=content_type, data=body.encode("utf-8")),
    )


def _page(token: str) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=token)


class LogisticsServicer(logistics_pb2_grpc.LogisticsServiceServicer):
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        views: LogisticsViews,
        carriers: Carriers,
        *,
        rules: AnomalyRules,
        poll: PollPolicy,
        on_queued: Callable[[], None] = lambda: None,
        push_writers: int = 2,
        docks: Docks | None = None,
    ) -> None:
        self.docks = docks or Docks()
        self.uow = uow_factory
        self.views = views
        self.carriers = carriers
        self.rules = rules
        self.poll = poll
        self.on_queued = on_queued
        self.pushes = tracking.PushDesk(uow_factory, rules, writers=push_writers)

    async def CreateShipments(
        self, request: pb.CreateShipmentsRequest, context: Ctx
    ) -> pb.CreateShipmentsResponse:
        found = await shipments.create_shipments(self.uow(), mappers.create_shipments(request), self.docks)
        return pb.CreateShipmentsResponse(shipments=[mappers.shipment(s) for s in found])

    async def GetShipment(self, request: pb.GetShipmentRequest, context: Ctx) -> pb.GetShipmentResponse:
        found = await shipments.get_shipment(self.uow(), request.shipment_id)
        return pb.GetShipmentResponse(shipment=mappers.shipment(found))

    async def ListShipments(self, request: pb.ListShipmentsRequest, context: Ctx) -> pb.ListShipmentsResponse:
        found, token = await self.views.shipments(
            request.order_id.strip(),
            mappers.status_filter(request.status),
            request.warehouse_id.strip(),
            request.page.page_size,
            request.page.page_token,
        )
        return pb.ListShipmentsResponse(shipments=[mappers.shipment(s) for s in found], page=_page(token))

    async def CancelShipments(
        self, request: pb.CancelShipmentsRequest, context: Ctx
    ) -> pb.CancelShipmentsResponse:
        found = await shipments.cancel_shipments(self.uow(), request.order_id.strip())
        return pb.CancelShipmentsResponse(shipments=[mappers.shipment(s) for s in found])

    async def CreateWaybills(
        self, request: pb.CreateWaybillsRequest, context: Ctx
    ) -> pb.CreateWaybillsResponse:
        queued = await waybills.create_waybills(self.uow(), mappers.create_waybills(request))
        if queued.queued:
            self.on_queued()
        return pb.CreateWaybillsResponse(
            batch_id=queued.batch_id, queued=queued.queued, skipped=queued.skipped
        )

    async def GetWaybillBatch(
        self, request: pb.GetWaybillBatchRequest, context: Ctx
    ) -> pb.GetWaybillBatchResponse:
        batch = await self.views.batch(request.batch_id.strip())
        if batch is None:
            raise NotFound(f"waybill batch {request.batch_id[:64]} not found")
        found = pb.WaybillBatch(
            batch_id=batch.batch_id,
            total=batch.progress.total,
            created=batch.progress.created,
            dead=batch.progress.dead,
            pending=batch.progress.pending,
            skipped=batch.progress.skipped,
            finished=batch.progress.finished,
            items=[mappers.waybill_item(item) for item in batch.items],
        )
        mappers.stamp(batch.created_at, found.created_at)
        mappers.stamp(batch.finished_at, found.finished_at)
        return pb.GetWaybillBatchResponse(batch=found)

    async def ListCarriers(self, request: pb.ListCarriersRequest, context: Ctx) -> pb.ListCarriersResponse:
        recorded = await self.views.breaker_changes()
        limits = getattr(self.carriers, "config", None)
        answered = []
        for account in ACCOUNTS.values():
            state, changed = self.carriers.breaker(account.carrier)
            if account.carrier in recorded:
                # the replica that calls the carriers recorded it: the same answer from every replica
                name, changed = recorded[account.carrier]
                state = BreakerState(name)
            carrier = pb.Carrier(
                carrier=account.carrier,
                name=account.name,
                protocol=account.protocol.value,
                breaker=mappers.breaker_state(state),
                routing_codes=routing_codes(account.carrier),
                create_limit_per_s=limits.limits.create_per_s.get(account.carrier, 0.0) if limits else 0.0,
                query_limit_per_s=limits.limits.query_per_s.get(account.carrier, 0.0) if limits else 0.0,
            )
            mappers.stamp(changed, carrier.breaker_changed_at)
            answered.append(carrier)
        return pb.ListCarriersResponse(carriers=answered)

    async def ListWaybillDeadLetters(
        self, request: pb.ListWaybillDeadLettersRequest, context: Ctx
    ) -> pb.ListWaybillDeadLettersResponse:
        found, token = await self.views.dead_letters(request.page.page_size, request.page.page_token)
        return pb.ListWaybillDeadLettersResponse(
            items=[mappers.waybill_item(i) for i in found], page=_page(token)
        )

    async def ReplayWaybillDeadLetter(
        self, request: pb.ReplayWaybillDeadLetterRequest, context: Ctx
    ) -> pb.ReplayWaybillDeadLetterResponse:
        again = await waybills.replay_dead_letter(self.uow(), request.shipment_id.strip())
        self.on_queued()
        return pb.ReplayWaybillDeadLetterResponse(item=mappers.waybill_item(again))

    async def ListPickTasks(self, request: pb.ListPickTasksRequest, context: Ctx) -> pb.ListPickTasksResponse:
        found = await picking.pick_tasks(self.uow(), request.warehouse_id.strip(), request.limit)
        tasks = []
        for shipment in found:
            task = pb.PickTask(
                shipment_id=shipment.shipment_id,
                order_id=shipment.order_id,
                priority=mappers.priority(shipment.priority),
                goods_type=shipment.goods_type,
                lines=[mappers.line(line) for line in shipment.lines],
            )
            mappers.stamp(shipment.deadline, task.deadline)
            mappers.stamp(shipment.created_at, task.created_at)
            tasks.append(task)
        return pb.ListPickTasksResponse(tasks=tasks)

    async def CreatePickList(
        self, request: pb.CreatePickListRequest, context: Ctx
    ) -> pb.CreatePickListResponse:
        pick_list_id, _ = await picking.create_pick_list(
            self.uow(), request.warehouse_id.strip(), request.max_tasks, list(request.shipment_ids)
        )
        view = await self.views.pick_list(pick_list_id)
        assert view is not None
        return pb.CreatePickListResponse(pick_list=self._pick_list(view))

    def _pick_list(self, view: Any) -> pb.PickList:
        found = pb.PickList(
            pick_list_id=view.pick_list_id,
            warehouse_id=view.warehouse_id,
            shipments=[mappers.shipment(s) for s in view.shipments],
        )
        mappers.stamp(view.created_at, found.created_at)
        return found

    async def _view(self, pick_list_id: str) -> Any:
        view = await self.views.pick_list(pick_list_id.strip())
        if view is None:
            raise NotFound(f"pick list {pick_list_id[:64]} not found")
        return view

    async def GetPickList(self, request: pb.GetPickListRequest, context: Ctx) -> pb.GetPickListResponse:
        return pb.GetPickListResponse(pick_list=self._pick_list(await self._view(request.pick_list_id)))

    async def RenderPickList(
        self, request: pb.RenderPickListRequest, context: Ctx
    ) -> pb.RenderPickListResponse:
        page = printing.pick_list_page(await self._view(request.pick_list_id))
        return pb.RenderPickListResponse(
            page=httpbody_pb2.HttpBody(content_type="text/html; charset=utf-8", data=page.encode("utf-8"))
        )

    async def RenderOrderCode(
        self, request: pb.RenderOrderCodeRequest, context: Ctx
    ) -> pb.RenderOrderCodeResponse:
        order_id = request.order_id.strip()
        content_type, image = printing.order_image(order_id, request.format)
        if not await self.views.order_exists(order_id):
            raise NotFound(f"order {order_id[:64]} has no shipments")
        return pb.RenderOrderCodeResponse(image=httpbody_pb2.HttpBody(content_type=content_type, data=image))

    async def ConfirmPick(self, request: pb.ConfirmPickRequest, context: Ctx) -> pb.ConfirmPickResponse:
        found = await picking.confirm_pick(
            self.uow(), request.warehouse_id.strip(), request.shipment_id.strip()
        )
        return pb.ConfirmPickResponse(shipment=mappers.shipment(found))

    async def ConfirmPacked(self, request: pb.ConfirmPackedRequest, context: Ctx) -> pb.ConfirmPackedResponse:
        found = await picking.confirm_packed(
            self.uow(), request.warehouse_id.strip(), request.shipment_id.strip()
        )
        return pb.ConfirmPackedResponse(shipment=mappers.shipment(found))

    async def ScanOut(self, request: pb.ScanOutRequest, context: Ctx) -> pb.ScanOutResponse:
        found = await picking.scan_out(self.uow(), request.warehouse_id.strip(), request.code, self.poll)
        return pb.ScanOutResponse(shipment=mappers.shipment(found))

    async def ReportTracking(
        self, request: pb.ReportTrackingRequest, context: Ctx
    ) -> pb.ReportTrackingResponse:
        return _taken(await self.pushes.take(mappers.tracking_push(request)))

    async def ReportTrackingBatch(
        self, request: pb.ReportTrackingBatchRequest, context: Ctx
    ) -> pb.ReportTrackingBatchResponse:
        """Every push handed to the push desk at once, so they share its next transactions; each is
        answered as ReportTracking would answer it."""
        pushes = mappers.tracking_pushes(request)
        answers = await batching.answer_each(
            pushes,
            self.pushes.take,
            len(pushes),
            list(request.traceparents)[: len(pushes)],
            "logistics.tracking_push",
        )
        return pb.ReportTrackingBatchResponse(
            outcomes=[
                pb.ReportTrackingOutcome(error=mappers.item_error(answer))
                if isinstance(answer, Exception)
                else pb.ReportTrackingOutcome(taken=_taken(answer))
                for answer in answers
            ]
        )

    async def GetTracking(self, request: pb.GetTrackingRequest, context: Ctx) -> pb.GetTrackingResponse:
        found = await shipments.get_shipment(
            self.uow(), request.shipment_id.strip(), request.order_id.strip()
        )
        events = await self.views.tracking(found.shipment_id)
        return pb.GetTrackingResponse(
            shipment=mappers.shipment(found), events=[mappers.tracking_event(e) for e in events]
        )

    async def ListQuarantinedPushes(
        self, request: pb.ListQuarantinedPushesRequest, context: Ctx
    ) -> pb.ListQuarantinedPushesResponse:
        found, token = await self.views.quarantined(request.page.page_size, request.page.page_token)
        pushes = []
        for push in found:
            message = pb.QuarantinedPush(
                quarantine_id=push.quarantine_id,
                carrier=push.carrier,
                reason=push.reason,
                content_type=push.content_type,
                body=push.body.decode("utf-8", "replace"),
            )
            mappers.stamp(push.received_at, message.received_at)
            pushes.append(message)
        return pb.ListQuarantinedPushesResponse(pushes=pushes, page=_page(token))
