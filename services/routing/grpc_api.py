"""The thin gRPC servicer: proto in → command → handler → proto out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oms.common.v1 import common_pb2
from oms.routing.v1 import routing_pb2 as pb
from oms.routing.v1 import routing_pb2_grpc
from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument
from services.routing import handlers, messages
from services.routing.domain.geography import normalise
from services.routing.domain.model import ExpectedDecision, RouteLine
from services.routing.handlers import RuleSetCache, StockSource

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RoutingService"].full_name
Ctx = Any


def _lines(lines: Any) -> tuple[RouteLine, ...]:
    return tuple(
        RouteLine(
            sku=line.sku,
            quantity=line.quantity,
            unit_weight_g=line.unit_weight_g or 500,
            goods_type=line.goods_type or "normal",
            unit_value_minor=line.unit_value_minor,
        )
        for line in lines
    )


def _priority(value: int) -> str:
    if value not in pb.Priority.values():
        raise InvalidArgument("priority", "must be a Priority")
    if value == pb.PRIORITY_UNSPECIFIED:
        return "standard"
    return pb.Priority.Name(value).removeprefix("PRIORITY_").lower()


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self, uow_factory: Callable[[], UnitOfWork], cache: RuleSetCache, stock: StockSource
    ) -> None:
        self.uow = uow_factory
        self.cache = cache
        self.stock = stock

    async def PlanFulfilment(
        self, request: pb.PlanFulfilmentRequest, context: Ctx
    ) -> pb.PlanFulfilmentResponse:
        if not request.HasField("address"):
            raise InvalidArgument("address", "is required")
        command = handlers.PlanCommand(
            request.order_id,
            request.address.province,
            request.address.city,
            _lines(request.lines),
            _priority(request.priority),
            request.address.country_code,
            request.refused_decision_id[:64],
        )
        stored = await handlers.plan_fulfilment(self.uow, self.cache, self.stock, command)
        return pb.PlanFulfilmentResponse(decision=messages.decision(stored))

    async def ExplainDecision(
        self, request: pb.ExplainDecisionRequest, context: Ctx
    ) -> pb.ExplainDecisionResponse:
        stored = await handlers.explain_decision(self.uow(), request.order_id)
        return pb.ExplainDecisionResponse(decision=messages.decision(stored))

    async def GetRuleSet(self, request: pb.GetRuleSetRequest, context: Ctx) -> pb.GetRuleSetResponse:
        return pb.GetRuleSetResponse(
            rule_set=messages.rule_set(await handlers.get_rule_set(self.uow(), request.version))
        )

    async def SaveDraftRuleSet(
        self, request: pb.SaveDraftRuleSetRequest, context: Ctx
    ) -> pb.SaveDraftRuleSetResponse:
        row = await handlers.save_draft(self.uow(), request.document_json, request.note)
        return pb.SaveDraftRuleSetResponse(rule_set=messages.rule_set(row))

    async def PutExpectedDecisions(
        self, request: pb.PutExpectedDecisionsRequest, context: Ctx
    ) -> pb.PutExpectedDecisionsResponse:
        cases = [
            ExpectedDecision(
                case.name,
                normalise(case.province, case.city, f"cases[{index}]", case.country_code),
                _lines(case.lines),
                case.expect_warehouse_id,
                case.expect_carrier,
            )
            for index, case in enumerate(request.cases)
        ]
        return pb.PutExpectedDecisionsResponse(
            stored=await handlers.put_expected_decisions(self.uow(), cases)
        )

    async def DryRunRuleSet(self, request: pb.DryRunRuleSetRequest, context: Ctx) -> pb.DryRunRuleSetResponse:
        if request.last_decisions < 0:
            raise InvalidArgument("last_decisions", "must not be negative")
        return messages.dry_run(await handlers.dry_run(self.uow(), request.version, request.last_decisions))

    async def ActivateRuleSet(
        self, request: pb.ActivateRuleSetRequest, context: Ctx
    ) -> pb.ActivateRuleSetResponse:
        row, result = await handlers.activate(self.uow, self.cache, request.version)
        return pb.ActivateRuleSetResponse(rule_set=messages.rule_set(row), dry_run=messages.dry_run(result))

    async def SetShadowRuleSet(
        self, request: pb.SetShadowRuleSetRequest, context: Ctx
    ) -> pb.SetShadowRuleSetResponse:
        if request.version < 0:
            raise InvalidArgument("version", "must not be negative")
        return pb.SetShadowRuleSetResponse(
            version=await handlers.set_shadow(self.uow(), self.cache, request.version)
        )

    async def GetShadowReport(
        self, request: pb.GetShadowReportRequest, context: Ctx
    ) -> pb.GetShadowReportResponse:
        if request.limit < 0:
            raise InvalidArgument("limit", "must not be negative")
        version, compared, differences = await handlers.shadow_report(self.uow(), request.limit)
        return pb.GetShadowReportResponse(
            shadow_version=version, decisions_compared=compared, differences=differences
        )

    async def ListParkedOrders(
        self, request: pb.ListParkedOrdersRequest, context: Ctx
    ) -> pb.ListParkedOrdersResponse:
        rows, token = await handlers.list_parked(self.uow(), request.page.page_size, request.page.page_token)
        return pb.ListParkedOrdersResponse(
            orders=[
                pb.ParkedOrder(
                    order_id=row.order_id,
                    reason=row.reason,
                    detail=row.detail,
                    parked_at=messages.timestamp(row.parked_at),
                    attempts=row.attempts,
                )
                for row in rows
            ],
            page=common_pb2.PageResponse(next_page_token=token),
        )
