"""The thin gRPC servicer: proto in → mappers → use case or view → mappers → proto out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oms.common.v1 import common_pb2
from oms.routing.v1 import routing_pb2 as pb
from oms.routing.v1 import routing_pb2_grpc
from services.kit import batching
from services.kit.errors import InvalidArgument
from services.routing import mappers
from services.routing.domain.commands import PlanCommand
from services.routing.handlers import planning, rule_sets
from services.routing.handlers.ports import StockSource, UnitOfWork
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.views import RoutingViews

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RoutingService"].full_name
Ctx = Any


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        views: RoutingViews,
        cache: RuleSetCache,
        stock: StockSource,
    ) -> None:
        self.uow = uow_factory
        self.views = views
        self.cache = cache
        self.stock = stock
        # plans decided at the same moment are recorded in one transaction
        self.writer = planning.DecisionWriter(uow_factory, cache)

    async def PlanFulfilment(
        self, request: pb.PlanFulfilmentRequest, context: Ctx
    ) -> pb.PlanFulfilmentResponse:
        command = mappers.plan_command(request)
        recorded = await planning.plan_fulfilment(self.uow, self.cache, self.stock, command, self.writer)
        return pb.PlanFulfilmentResponse(decision=mappers.decision(recorded))

    async def PlanFulfilments(
        self, request: pb.PlanFulfilmentsRequest, context: Ctx
    ) -> pb.PlanFulfilmentsResponse:
        items = list(request.requests)
        keys = [item.order_id for item in items]
        batching.distinct(keys, "requests")
        commands: list[PlanCommand | Exception] = []
        for item in items:
            try:
                commands.append(mappers.plan_command(item))
            except InvalidArgument as error:
                commands.append(error)
        valid = [command for command in commands if isinstance(command, PlanCommand)]
        planned = iter(
            await planning.plan_fulfilments(
                self.uow, self.cache, self.stock, valid, request.traceparents, writer=self.writer
            )
        )
        answers = [command if isinstance(command, Exception) else next(planned) for command in commands]
        return pb.PlanFulfilmentsResponse(
            outcomes=[
                pb.PlanOutcome(order_id=key, error=mappers.item_error(answer))
                if isinstance(answer, Exception)
                else pb.PlanOutcome(order_id=key, decision=mappers.decision(answer))
                for key, answer in zip(keys, answers, strict=True)
            ]
        )

    async def ExplainDecision(
        self, request: pb.ExplainDecisionRequest, context: Ctx
    ) -> pb.ExplainDecisionResponse:
        recorded = await self.views.explain(request.order_id)
        return pb.ExplainDecisionResponse(decision=mappers.decision(recorded))

    async def GetRuleSet(self, request: pb.GetRuleSetRequest, context: Ctx) -> pb.GetRuleSetResponse:
        found = await rule_sets.get_rule_set(self.uow(), request.version)
        return pb.GetRuleSetResponse(rule_set=mappers.rule_set(found))

    async def SaveDraftRuleSet(
        self, request: pb.SaveDraftRuleSetRequest, context: Ctx
    ) -> pb.SaveDraftRuleSetResponse:
        draft = await rule_sets.save_draft(self.uow(), request.document_json, request.note)
        return pb.SaveDraftRuleSetResponse(rule_set=mappers.rule_set(draft))

    async def PutExpectedDecisions(
        self, request: pb.PutExpectedDecisionsRequest, context: Ctx
    ) -> pb.PutExpectedDecisionsResponse:
        cases = mappers.expected_decisions(request)
        return pb.PutExpectedDecisionsResponse(
            stored=await rule_sets.put_expected_decisions(self.uow(), cases)
        )

    async def DryRunRuleSet(self, request: pb.DryRunRuleSetRequest, context: Ctx) -> pb.DryRunRuleSetResponse:
        result = await rule_sets.dry_run(self.uow(), request.version, request.last_decisions)
        return mappers.dry_run(result)

    async def ActivateRuleSet(
        self, request: pb.ActivateRuleSetRequest, context: Ctx
    ) -> pb.ActivateRuleSetResponse:
        activated, result = await rule_sets.activate(self.uow, self.cache, request.version)
        return pb.ActivateRuleSetResponse(
            rule_set=mappers.rule_set(activated), dry_run=mappers.dry_run(result)
        )

    async def SetShadowRuleSet(
        self, request: pb.SetShadowRuleSetRequest, context: Ctx
    ) -> pb.SetShadowRuleSetResponse:
        version = await rule_sets.set_shadow(self.uow(), self.cache, request.version)
        return pb.SetShadowRuleSetResponse(version=version)

    async def GetShadowReport(
        self, request: pb.GetShadowReportRequest, context: Ctx
    ) -> pb.GetShadowReportResponse:
        report = await self.views.shadow_report(request.limit)
        return pb.GetShadowReportResponse(
            shadow_version=report.version,
            decisions_compared=report.compared,
            differences=[mappers.changed_decision(d) for d in report.differences],
        )

    async def ListParkedOrders(
        self, request: pb.ListParkedOrdersRequest, context: Ctx
    ) -> pb.ListParkedOrdersResponse:
        orders, token = await self.views.parked(request.page.page_size, request.page.page_token)
        return pb.ListParkedOrdersResponse(
            orders=[mappers.parked_order(o) for o in orders],
            page=common_pb2.PageResponse(next_page_token=token),
        )
