"""The thin gRPC servicer: proto in → mappers → handler or view → mappers → proto out.

Who is calling is the principal of the call's verified identity assertion (minted by the gateway, or
a peer service's own), never bare metadata; personal fields are masked unless one of the roles may
see them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import grpc

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit import identity, tracing
from services.kit.batching import Batcher
from services.kit.errors import InvalidArgument, PermissionDenied
from services.orders import handlers, mappers, metrics, views
from services.orders.domain import masking
from services.orders.domain import payments as pay
from services.orders.domain.model import IngestOrder as IngestCommand
from services.orders.domain.scope import Scope, check_channel
from services.orders.domain.timeline import Actor, ActorType
from services.orders.handlers import channel_health
from services.orders.orchestrator import Orchestrator
from services.orders.store import OrdersUnitOfWork

# one single order waiting to be stored with others: (the order, who sent it, its trace)
Gathered = tuple[IngestCommand | handlers.ChannelPayload, Actor, str]
SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name
PAYMENT_PROVIDER_ROLE = "payment_provider"


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(
        self,
        uow_factory: Callable[[], OrdersUnitOfWork],
        policy: handlers.Policy,
        orchestrator: Orchestrator | None = None,
        export_chunk: int = 500,
        export_pause_seconds: float = 0.0,
        ingest_linger: float = 0.0,
        ingest_max_batch: int = 64,
        channel_health_window: timedelta = timedelta(hours=1),
    ) -> None:
        self.channel_health_window = channel_health_window
        self.uow = uow_factory
        self.export_chunk = export_chunk
        self.export_pause_seconds = export_pause_seconds
        self.policy = policy
        self.orchestrator = orchestrator
        # single IngestOrder / IngestChannelOrder calls arriving within `ingest_linger` seconds are
        # stored in one transaction (0: each alone)
        self._singles: Batcher[Gathered, handlers.Ingested] | None = (
            Batcher(self._ingest_gathered, ingest_linger, ingest_max_batch) if ingest_linger > 0 else None
        )

    def _now(self) -> datetime:
        """The service's clock (an SLA timer's colour is computed at this moment)."""
        return self.uow().clock.now()

    def _poke(self, changes: handlers.Changes) -> None:
        if self.orchestrator is not None:
            self.orchestrator.poke(changes)

    # ---- ingest -------------------------------------------------------------------------------

    async def IngestOrder(
        self, request: orders_pb2.IngestOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestOrderResponse:
        result = await self._ingest_one(mappers.ingest_command(request), context)
        assert result.order is not None
        return orders_pb2.IngestOrderResponse(
            order=mappers.order_message(result.order, _reveal(context), result.pending_step),
            created=result.outcome is handlers.Outcome.CREATED,
            outcome=mappers.outcome_value(result.outcome),
        )

    async def IngestChannelOrder(
        self, request: orders_pb2.IngestChannelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestChannelOrderResponse:
        result = await self._ingest_one(mappers.channel_payload(request), context)
        assert result.order is not None
        return orders_pb2.IngestChannelOrderResponse(
            order=mappers.order_message(result.order, _reveal(context), result.pending_step),
            outcome=mappers.outcome_value(result.outcome),
        )

    async def _ingest_one(
        self, item: IngestCommand | handlers.ChannelPayload, context: grpc.aio.ServicerContext
    ) -> handlers.Ingested:
        check_channel(scope_of(context), item.channel)
        actor = actor_of(context)
        if self._singles is None:
            results, changes = await handlers.ingest(self.uow(), self.policy, [item], actor)
            self._poke(changes)
            result = results[0]
        else:
            result = await self._singles.submit((item, actor, tracing.current_traceparent()))
        metrics.count_ingested([(result, item)])
        if result.outcome is handlers.Outcome.REJECTED:
            raise InvalidArgument.of(result.violations or [(result.error_field, result.error)])
        return result

    async def _ingest_gathered(self, items: list[Gathered]) -> list[handlers.Ingested | BaseException]:
        """Single orders that arrived within the linger, stored as one batch per caller (each order in
        its own trace, each caller answered with its own result). When the batch fails as a whole, each
        order is tried alone, so only the one at fault gets the error."""
        answers: dict[int, handlers.Ingested | BaseException] = {}
        by_actor: dict[Actor, list[int]] = {}
        for index, (_, actor, _) in enumerate(items):
            by_actor.setdefault(actor, []).append(index)
        for actor, indexes in by_actor.items():
            group = [items[index] for index in indexes]
            try:
                results, changes = await handlers.ingest(
                    self.uow(), self.policy, [item for item, _, _ in group], actor, [t for _, _, t in group]
                )
            except Exception as error:
                if len(group) == 1:
                    answers[indexes[0]] = error
                else:
                    for index in indexes:
                        [answers[index]] = await self._ingest_gathered([items[index]])
                continue
            self._poke(changes)
            answers.update(zip(indexes, results, strict=True))
        return [answers[index] for index in range(len(items))]

    async def IngestOrders(
        self, request: orders_pb2.IngestOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestOrdersResponse:
        scope = scope_of(context)
        items = mappers.batch_items(request)
        for index, item in enumerate(items):
            check_channel(scope, item.channel, f"items[{index}].channel")
        results, changes = await handlers.ingest(self.uow(), self.policy, items, actor_of(context))
        self._poke(changes)
        metrics.count_ingested((result, items[result.index]) for result in results)
        return mappers.batch_reply(results)

    # ---- reads --------------------------------------------------------------------------------

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderResponse:
        stored = await handlers.get_order(self.uow(), request.order_id, scope_of(context))
        return orders_pb2.GetOrderResponse(
            order=mappers.stored_message(stored, _reveal(context), self._now())
        )

    async def GetOrderByChannel(
        self, request: orders_pb2.GetOrderByChannelRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderByChannelResponse:
        stored = await handlers.get_order_by_channel(
            self.uow(), mappers.channel_of(request.channel), request.channel_order_id, scope_of(context)
        )
        return orders_pb2.GetOrderByChannelResponse(
            order=mappers.stored_message(stored, _reveal(context), self._now())
        )

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListOrdersResponse:
        found, token = await views.list_orders(
            self.uow(),
            self.policy.keys,
            mappers.order_filter(request.filter, scope_of(context), identity.current().roles),
            request.page.page_size,
            request.page.page_token,
        )
        reveal, now = _reveal(context), self._now()
        return orders_pb2.ListOrdersResponse(
            orders=[mappers.stored_message(stored, reveal, now) for stored in found],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def ExportOrders(
        self, request: orders_pb2.ExportOrdersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orders_pb2.ExportOrdersResponse]:
        reveal, now = _reveal(context), self._now()
        found = mappers.order_filter(request.filter, scope_of(context), identity.current().roles)
        chunks = views.export_orders(
            self.uow, self.policy.keys, found, self.export_chunk, self.export_pause_seconds
        )
        async for chunk in chunks:
            yield orders_pb2.ExportOrdersResponse(
                orders=[mappers.stored_message(stored, reveal, now) for stored in chunk]
            )
        yield orders_pb2.ExportOrdersResponse(complete=True)

    async def GetOrderStats(
        self, request: orders_pb2.GetOrderStatsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderStatsResponse:
        stats = await views.order_stats(
            self.uow(),
            mappers.optional_time(request, "created_from"),
            mappers.optional_time(request, "created_to"),
            scope_of(context),
        )
        return mappers.stats_message(stats)

    async def GetTimeline(
        self, request: orders_pb2.GetTimelineRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetTimelineResponse:
        await handlers.get_order(self.uow(), request.order_id, scope_of(context))
        return mappers.timeline_message(await views.timeline(self.uow(), request.order_id))

    # ---- SLA timers ---------------------------------------------------------------------------

    async def ListSlaTimers(
        self, request: orders_pb2.ListSlaTimersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListSlaTimersResponse:
        minimum = mappers.sla_level(request.min_level)
        queue = handlers.check_queue(request.queue, self.policy.sla) if request.queue.strip() else ""
        now, rows, counts, token = await views.sla_timers(
            self.uow(), minimum, queue, request.page.page_size, request.page.page_token
        )
        return mappers.sla_timers_message(now, rows, counts, token)

    async def ListSlaOwners(
        self, request: orders_pb2.ListSlaOwnersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListSlaOwnersResponse:
        owners = await handlers.queue_owners(self.uow())
        return orders_pb2.ListSlaOwnersResponse(
            owners=[mappers.sla_owners_message(queue, pair) for queue, pair in owners.items()]
        )

    async def SetSlaOwners(
        self, request: orders_pb2.SetSlaOwnersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.SetSlaOwnersResponse:
        given = request.owners
        queue, owners = await handlers.set_queue_owners(
            self.uow(), self.policy.sla, given.queue, given.owner, given.backup, actor_of(context).id
        )
        return orders_pb2.SetSlaOwnersResponse(owners=mappers.sla_owners_message(queue, owners))

    async def SetOrderSlaOwners(
        self, request: orders_pb2.SetOrderSlaOwnersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.SetOrderSlaOwnersResponse:
        await handlers.get_order(self.uow(), request.order_id, scope_of(context))
        state, status = await handlers.set_order_owners(
            self.uow(), request.order_id, request.owner, request.backup, actor_of(context)
        )
        timer = mappers.sla_timer_message(request.order_id, status, state, self._now())
        return orders_pb2.SetOrderSlaOwnersResponse(sla=timer)

    # ---- risk ---------------------------------------------------------------------------------

    async def GetRiskRuleSet(
        self, request: orders_pb2.GetRiskRuleSetRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetRiskRuleSetResponse:
        found = await handlers.risk.get_rule_set(self.uow(), request.version)
        return orders_pb2.GetRiskRuleSetResponse(rule_set=mappers.rule_set_message(found))

    async def SaveRiskRuleSetDraft(
        self, request: orders_pb2.SaveRiskRuleSetDraftRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.SaveRiskRuleSetDraftResponse:
        draft = await handlers.risk.save_draft(
            self.uow(), request.document_json, request.note, actor_of(context).id
        )
        return orders_pb2.SaveRiskRuleSetDraftResponse(rule_set=mappers.rule_set_message(draft))

    async def DryRunRiskRuleSet(
        self, request: orders_pb2.DryRunRiskRuleSetRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.DryRunRiskRuleSetResponse:
        run = await handlers.risk.dry_run(self.uow(), request.version, request.last_orders)
        return mappers.dry_run_message(run)

    async def ActivateRiskRuleSet(
        self, request: orders_pb2.ActivateRiskRuleSetRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ActivateRiskRuleSetResponse:
        rules = self.policy.risk or handlers.RiskRules()
        active = await handlers.risk.activate(self.uow(), request.version, actor_of(context).id, rules)
        return orders_pb2.ActivateRiskRuleSetResponse(rule_set=mappers.rule_set_message(active))

    async def ListRiskReviews(
        self, request: orders_pb2.ListRiskReviewsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListRiskReviewsResponse:
        rows, token = await views.risk_reviews(self.uow(), request.page.page_size, request.page.page_token)
        return orders_pb2.ListRiskReviewsResponse(
            evaluations=[mappers.evaluation_message(row) for row in rows],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def GetRiskEvaluation(
        self, request: orders_pb2.GetRiskEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetRiskEvaluationResponse:
        await handlers.get_order(self.uow(), request.order_id, scope_of(context))
        found = await handlers.risk.risk_evaluation(self.uow(), request.order_id)
        return orders_pb2.GetRiskEvaluationResponse(evaluation=mappers.evaluation_message(found))

    async def ReviewRiskHold(
        self, request: orders_pb2.ReviewRiskHoldRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReviewRiskHoldResponse:
        if request.decision not in (orders_pb2.RISK_DECISION_APPROVE, orders_pb2.RISK_DECISION_CANCEL):
            raise InvalidArgument("decision", "must be RISK_DECISION_APPROVE or RISK_DECISION_CANCEL")
        handlers.check_order_id(request.order_id)
        order, changes = await handlers.risk.review_risk_hold(
            self.uow(),
            request.order_id,
            request.decision == orders_pb2.RISK_DECISION_APPROVE,
            request.note,
            actor_of(context),
        )
        self._poke(changes)
        return orders_pb2.ReviewRiskHoldResponse(order=mappers.order_message(order, _reveal(context)))

    async def GetRiskRuleStats(
        self, request: orders_pb2.GetRiskRuleStatsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetRiskRuleStatsResponse:
        return mappers.rule_stats_message(await handlers.risk.rule_stats(self.uow(), request.days))

    # ---- manual actions -----------------------------------------------------------------------

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.CancelOrderResponse:
        order, changes = await handlers.cancel_order(
            self.uow(), request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        self._poke(changes)
        return orders_pb2.CancelOrderResponse(order=mappers.order_message(order, _reveal(context)))

    async def HoldOrder(
        self, request: orders_pb2.HoldOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.HoldOrderResponse:
        order, _ = await handlers.hold_order(
            self.uow(), request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        return orders_pb2.HoldOrderResponse(order=mappers.order_message(order, _reveal(context)))

    async def ReleaseOrder(
        self, request: orders_pb2.ReleaseOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReleaseOrderResponse:
        order, changes = await handlers.release_order(
            self.uow(), request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        self._poke(changes)
        return orders_pb2.ReleaseOrderResponse(order=mappers.order_message(order, _reveal(context)))

    async def ListAgentCustomers(
        self, request: orders_pb2.ListAgentCustomersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListAgentCustomersResponse:
        customers = await handlers.agent_customers(self.uow(), request.agent_id)
        return orders_pb2.ListAgentCustomersResponse(buyer_ids=customers)

    async def AssignCustomers(
        self, request: orders_pb2.AssignCustomersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.AssignCustomersResponse:
        assigned = await handlers.assign_customers(
            self.uow(), request.agent_id, list(request.buyer_ids), request.replace
        )
        return orders_pb2.AssignCustomersResponse(buyer_ids=assigned)

    # ---- payments -----------------------------------------------------------------------------

    async def ReportPayment(
        self, request: orders_pb2.ReportPaymentRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReportPaymentResponse:
        record, duplicate, changes = await handlers.report_payment(
            self.uow, self.policy, mappers.notification(request, provider_of(request, context))
        )
        self._poke(changes)
        metrics.count_payment(record, duplicate)
        return orders_pb2.ReportPaymentResponse(payment=mappers.payment_message(record), duplicate=duplicate)

    async def ListPayments(
        self, request: orders_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListPaymentsResponse:
        records, token = await views.list_payments(
            self.uow(),
            mappers.payment_state(request.state),
            request.order_id,
            request.page.page_size,
            request.page.page_token,
        )
        return orders_pb2.ListPaymentsResponse(
            payments=[mappers.payment_message(record) for record in records],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def ReviewPayment(
        self, request: orders_pb2.ReviewPaymentRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReviewPaymentResponse:
        record, changes = await handlers.review_payment(
            self.uow, self.policy, request.payment_id, request.accept
        )
        self._poke(changes)
        return orders_pb2.ReviewPaymentResponse(payment=mappers.payment_message(record))

    async def ImportStatement(
        self, request: orders_pb2.ImportStatementRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ImportStatementResponse:
        _, report = await handlers.import_statement(
            self.uow(),
            subject_of(context),
            request.provider,
            request.statement_id,
            mappers.statement_rows(request),
        )
        return mappers.statement_message(report)

    async def RepairFromStatement(
        self, request: orders_pb2.RepairFromStatementRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.RepairFromStatementResponse:
        record, changes = await handlers.repair(
            self.uow,
            self.policy,
            subject_of(context),
            request.statement_id,
            request.transaction_id,
            request.order_id,
        )
        self._poke(changes)
        return orders_pb2.RepairFromStatementResponse(payment=mappers.payment_message(record))

    # ---- dead letters -------------------------------------------------------------------------

    async def ListDeadLetters(
        self, request: orders_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListDeadLettersResponse:
        rows, token = await views.list_dead_letters(
            self.uow(), request.page.page_size, request.page.page_token
        )
        return mappers.dead_letters_message(rows, token)

    async def ReplayDeadLetter(
        self, request: orders_pb2.ReplayDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReplayDeadLetterResponse:
        kind, _, ident = request.dead_letter_id.partition(":")
        if kind == "payment" and ident:
            await handlers.replay_payment(self.uow(), ident)
            record, changes = await handlers.handle_payment(self.uow, self.policy, ident)
            self._poke(changes)
            ok = record.state is not pay.PaymentState.RECEIVED and record.state is not pay.PaymentState.DEAD
            return orders_pb2.ReplayDeadLetterResponse(succeeded=ok, error="" if ok else record.reason)
        if kind == "step" and ident:
            handlers.check_order_id(ident)
            await handlers.replay_step(self.uow(), ident)
            if self.orchestrator is None:
                return orders_pb2.ReplayDeadLetterResponse(succeeded=False, error="no orchestrator here")
            await self.orchestrator.run_due()
            stored = await handlers.get_order(self.uow(), ident)
            ok = stored.step is None and not stored.step_dead
            return orders_pb2.ReplayDeadLetterResponse(succeeded=ok, error="" if ok else "step still pending")
        raise InvalidArgument("dead_letter_id", "must be payment:<payment id> or step:<order id>")

    async def ReplayDeadSteps(
        self, request: orders_pb2.ReplayDeadStepsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReplayDeadStepsResponse:
        result = await handlers.replay_dead_steps(
            self.uow(),
            request.reason_contains.strip(),
            mappers.optional_time(request, "failed_from"),
            mappers.optional_time(request, "failed_to"),
            request.max_steps,
            request.dry_run,
        )
        if result.replayed and self.orchestrator is not None:
            self.orchestrator.poke()  # the steps run in the background, at the process manager's pace
        return orders_pb2.ReplayDeadStepsResponse(
            matched=result.matched, replayed=len(result.replayed), order_ids=result.replayed
        )

    async def ListQuarantine(
        self, request: orders_pb2.ListQuarantineRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListQuarantineResponse:
        rows, token = await views.list_quarantine(
            self.uow(),
            self.policy.keys,
            mappers.channel_of(request.channel),
            request.page.page_size,
            request.page.page_token,
            _reveal(context),
        )
        return mappers.quarantine_message(rows, token)

    # ---- status anchor ------------------------------------------------------------------------

    async def ReportSourceStatus(
        self, request: orders_pb2.ReportSourceStatusRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReportSourceStatusResponse:
        order, observation, changed, changes = await handlers.report_source_status(
            self.uow(), self.policy, mappers.source_report(request), scope_of(context)
        )
        self._poke(changes)
        return mappers.source_report_reply(order, observation, changed, _reveal(context))

    async def GetStatusRules(
        self, request: orders_pb2.GetStatusRulesRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetStatusRulesResponse:
        return mappers.rules_message(self.policy.rules)

    async def GetDriftReport(
        self, request: orders_pb2.GetDriftReportRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetDriftReportResponse:
        if request.limit < 0 or request.limit > views.MAX_DRIFT_LIMIT:
            raise InvalidArgument("limit", "must be between 0 and 10000")
        report = await views.drift_report(self.uow(), request.source.strip().upper(), request.limit or 1000)
        return mappers.drift_message(report)

    async def GetChannelHealth(
        self, request: orders_pb2.GetChannelHealthRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetChannelHealthResponse:
        found = await channel_health.channel_health(self.uow(), self.channel_health_window)
        return mappers.channel_health_message(found)


# ---- who is calling ------------------------------------------------------------------------------


# Each takes the call's context so servicer code reads the same everywhere; the principal itself
# comes only from the assertion the kit's server verified for this call.


def actor_of(context: grpc.aio.ServicerContext) -> Actor:
    principal = identity.current()
    kind = principal.actor_type
    actor_type = ActorType(kind) if kind in ActorType._value2member_map_ else ActorType.SERVICE
    return Actor(actor_type, principal.subject)


def subject_of(context: grpc.aio.ServicerContext) -> str:
    """Whose client-chosen ids (statement ids) a call names: the caller's own, never another's."""
    return identity.current().subject


def scope_of(context: grpc.aio.ServicerContext) -> Scope:
    principal = identity.current()
    # as asserted: the gateway checked and normalised every id once; trimming here is what once turned
    # a customer id of " " into "no scope"
    return Scope(customer_id=principal.customer_id, agent_id=principal.agent_id, channel=principal.channel)


def provider_of(request: orders_pb2.ReportPaymentRequest, context: grpc.aio.ServicerContext) -> str:
    """The provider a notification is from. A payment provider's credential reports its own provider's
    payments only (an empty provider is its own); one that names no provider reports none."""
    principal = identity.current()
    if principal.provider:
        if request.provider and request.provider != principal.provider:
            raise PermissionDenied(f"provider: this caller reports {principal.provider} payments only")
        return principal.provider
    if PAYMENT_PROVIDER_ROLE in principal.roles:
        raise PermissionDenied("provider: a payment provider's credential must name its provider")
    return request.provider


def _reveal(context: grpc.aio.ServicerContext) -> bool:
    """Unmasked for roles that may see personal data, or for the gateway's audited reveal (only the
    gateway's key may assert it)."""
    principal = identity.current()
    return masking.may_see_pii(principal.roles) or principal.reveal
