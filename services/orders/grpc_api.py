"""The thin gRPC servicer: proto in → command → handler → proto out.

Who is calling is the principal of the call's verified identity assertion (minted by the gateway, or
a peer service's own), never bare metadata; personal fields are masked unless one of the roles may
see them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit import identity, inputs
from services.kit.db import UnitOfWork
from services.kit.errors import InvalidArgument, PermissionDenied
from services.kit.status import in_field_order
from services.orders import handlers, queries, statements
from services.orders.domain import masking, reconciliation
from services.orders.domain import payments as pay
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import (
    Address,
    Channel,
    Discount,
    DiscountKind,
    Order,
    OrderLine,
    Priority,
    is_currency_code,
)
from services.orders.domain.model import IngestOrder as IngestCommand
from services.orders.domain.model import violations as model_violations
from services.orders.domain.timeline import Actor, ActorType
from services.orders.messages import status_value, timestamp
from services.orders.orchestrator import Orchestrator
from services.orders.scope import EVERYTHING, Scope, check_channel
from services.orders.store import Stored

SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name
PAYMENT_PROVIDER_ROLE = "payment_provider"
OUTCOMES = {outcome: getattr(orders_pb2, f"INGEST_OUTCOME_{outcome.value}") for outcome in handlers.Outcome}


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        policy: handlers.Policy,
        orchestrator: Orchestrator | None = None,
        export_chunk: int = 500,
        export_pause_seconds: float = 0.0,
    ) -> None:
        self.uow = uow_factory
        self.export_chunk = export_chunk
        self.export_pause_seconds = export_pause_seconds
        self.policy = policy
        self.orchestrator = orchestrator

    def _poke(self, changes: handlers.Changes) -> None:
        if self.orchestrator is not None:
            self.orchestrator.poke(changes)

    # ---- ingest -------------------------------------------------------------------------------

    async def IngestOrder(
        self, request: orders_pb2.IngestOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestOrderResponse:
        result = await self._ingest_one(ingest_command(request), context)
        assert result.order is not None
        return orders_pb2.IngestOrderResponse(
            order=order_message(result.order, _reveal(context), result.pending_step),
            created=result.outcome is handlers.Outcome.CREATED,
            outcome=OUTCOMES[result.outcome],  # type: ignore[arg-type]
        )

    async def IngestChannelOrder(
        self, request: orders_pb2.IngestChannelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestChannelOrderResponse:
        result = await self._ingest_one(channel_payload(request), context)
        assert result.order is not None
        return orders_pb2.IngestChannelOrderResponse(
            order=order_message(result.order, _reveal(context), result.pending_step),
            outcome=OUTCOMES[result.outcome],  # type: ignore[arg-type]
        )

    async def _ingest_one(
        self, item: IngestCommand | handlers.ChannelPayload, context: grpc.aio.ServicerContext
    ) -> handlers.Ingested:
        check_channel(scope_of(context), item.channel)
        results, changes = await handlers.ingest(self.uow(), self.policy, [item], actor_of(context))
        self._poke(changes)
        result = results[0]
        if result.outcome is handlers.Outcome.REJECTED:
            raise InvalidArgument.of(result.violations or [(result.error_field, result.error)])
        return result

    async def IngestOrders(
        self, request: orders_pb2.IngestOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.IngestOrdersResponse:
        scope = scope_of(context)
        items: list[IngestCommand | handlers.ChannelPayload] = []
        for index, item in enumerate(request.items):
            which = item.WhichOneof("item")
            if which == "order":
                try:
                    items.append(ingest_command(item.order))
                except InvalidArgument as error:
                    raise error.within(f"items[{index}].order") from None
            elif which == "channel_order":
                items.append(channel_payload(item.channel_order))
            else:
                raise InvalidArgument(f"items[{index}]", "needs an order or a channel_order")
            check_channel(scope, items[-1].channel, f"items[{index}].channel")
        results, changes = await handlers.ingest(self.uow(), self.policy, items, actor_of(context))
        self._poke(changes)
        counts = {outcome: 0 for outcome in handlers.Outcome}
        reply = orders_pb2.IngestOrdersResponse()
        for result in results:
            counts[result.outcome] += 1
            reply.results.append(
                orders_pb2.IngestResult(
                    index=result.index,
                    outcome=OUTCOMES[result.outcome],  # type: ignore[arg-type]
                    order_id=result.order.order_id if result.order else "",
                    channel=_channel_value(result.channel),  # type: ignore[arg-type]
                    channel_order_id=result.channel_order_id,
                    error_field=result.error_field,
                    error=result.error,
                )
            )
        reply.created = counts[handlers.Outcome.CREATED]
        reply.unchanged = counts[handlers.Outcome.UNCHANGED]
        reply.updated = counts[handlers.Outcome.UPDATED]
        reply.stale = counts[handlers.Outcome.STALE]
        reply.rejected = counts[handlers.Outcome.REJECTED]
        return reply

    # ---- reads --------------------------------------------------------------------------------

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderResponse:
        stored = await handlers.get_order(self.uow(), self.policy.keys, request.order_id, scope_of(context))
        return orders_pb2.GetOrderResponse(order=stored_message(stored, _reveal(context)))

    async def GetOrderByChannel(
        self, request: orders_pb2.GetOrderByChannelRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderByChannelResponse:
        stored = await handlers.get_order_by_channel(
            self.uow(),
            self.policy.keys,
            _channel(request.channel),
            request.channel_order_id,
            scope_of(context),
        )
        return orders_pb2.GetOrderByChannelResponse(order=stored_message(stored, _reveal(context)))

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListOrdersResponse:
        found, token = await queries.list_orders(
            self.uow(),
            self.policy.keys,
            order_filter(request.filter, scope_of(context), identity.current().roles),
            request.page.page_size,
            request.page.page_token,
        )
        reveal = _reveal(context)
        return orders_pb2.ListOrdersResponse(
            orders=[stored_message(stored, reveal) for stored in found],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def ExportOrders(
        self, request: orders_pb2.ExportOrdersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orders_pb2.ExportOrdersResponse]:
        reveal = _reveal(context)
        found = order_filter(request.filter, scope_of(context), identity.current().roles)
        chunks = queries.export_orders(
            self.uow, self.policy.keys, found, self.export_chunk, self.export_pause_seconds
        )
        async for chunk in chunks:
            yield orders_pb2.ExportOrdersResponse(orders=[stored_message(stored, reveal) for stored in chunk])
        yield orders_pb2.ExportOrdersResponse(complete=True)

    async def GetOrderStats(
        self, request: orders_pb2.GetOrderStatsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetOrderStatsResponse:
        stats = await queries.order_stats(
            self.uow(),
            _optional_time(request, "created_from"),
            _optional_time(request, "created_to"),
            scope_of(context),
        )
        return orders_pb2.GetOrderStatsResponse(
            statuses=[
                orders_pb2.StatusStats(
                    status=status_value(row.status),  # type: ignore[arg-type]
                    orders=row.orders,
                    average_dwell_seconds=row.average_dwell_seconds,
                )
                for row in stats.statuses
            ],
            total_orders=stats.total_orders,
            exception_ratio=stats.exception_ratio,
            stages=[
                orders_pb2.StageDuration(
                    stage=row.stage,
                    orders=row.orders,
                    average_hours=row.average_hours,
                    p50_hours=row.p50_hours,
                    p90_hours=row.p90_hours,
                )
                for row in stats.stages
            ],
            definitions=list(stats.definitions),
        )

    async def GetTimeline(
        self, request: orders_pb2.GetTimelineRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetTimelineResponse:
        await handlers.get_order(self.uow(), self.policy.keys, request.order_id, scope_of(context))
        entries = await queries.timeline(self.uow(), request.order_id)
        return orders_pb2.GetTimelineResponse(
            entries=[
                orders_pb2.TimelineEntry(
                    sequence=entry.sequence,
                    at=timestamp(entry.at),
                    kind=entry.kind,
                    actor_type=entry.actor_type,
                    actor_id=entry.actor_id,
                    source=entry.source,
                    from_status=_status_name(entry.from_status),  # type: ignore[arg-type]
                    to_status=_status_name(entry.to_status),  # type: ignore[arg-type]
                    detail=entry.detail,
                    trace_id=entry.trace_id,
                    linked_trace_id=entry.linked_trace_id,
                )
                for entry in entries
            ]
        )

    # ---- manual actions -----------------------------------------------------------------------

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.CancelOrderResponse:
        order, changes = await handlers.cancel_order(
            self.uow(), self.policy, request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        self._poke(changes)
        return orders_pb2.CancelOrderResponse(order=order_message(order, _reveal(context)))

    async def HoldOrder(
        self, request: orders_pb2.HoldOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.HoldOrderResponse:
        order, _ = await handlers.hold_order(
            self.uow(), self.policy, request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        return orders_pb2.HoldOrderResponse(order=order_message(order, _reveal(context)))

    async def ReleaseOrder(
        self, request: orders_pb2.ReleaseOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReleaseOrderResponse:
        order, changes = await handlers.release_order(
            self.uow(), self.policy, request.order_id, request.reason, actor_of(context), scope_of(context)
        )
        self._poke(changes)
        return orders_pb2.ReleaseOrderResponse(order=order_message(order, _reveal(context)))

    # ---- payments -----------------------------------------------------------------------------

    async def ReportPayment(
        self, request: orders_pb2.ReportPaymentRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReportPaymentResponse:
        record, duplicate, changes = await handlers.report_payment(
            self.uow, self.policy, notification(request, provider_of(request, context))
        )
        self._poke(changes)
        return orders_pb2.ReportPaymentResponse(payment=payment_message(record), duplicate=duplicate)

    async def ListPayments(
        self, request: orders_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListPaymentsResponse:
        state = ""
        if request.state:
            state = orders_pb2.PaymentState.Name(request.state).removeprefix("PAYMENT_STATE_")
        records, token = await queries.list_payments(
            self.uow(), state, request.order_id, request.page.page_size, request.page.page_token
        )
        return orders_pb2.ListPaymentsResponse(
            payments=[payment_message(record) for record in records],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    async def ReviewPayment(
        self, request: orders_pb2.ReviewPaymentRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReviewPaymentResponse:
        record, changes = await handlers.review_payment(
            self.uow, self.policy, request.payment_id, request.accept
        )
        self._poke(changes)
        return orders_pb2.ReviewPaymentResponse(payment=payment_message(record))

    async def ImportStatement(
        self, request: orders_pb2.ImportStatementRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ImportStatementResponse:
        currency = request.currency_code or "CNY"
        if request.rows:
            rows = [
                reconciliation.Row(
                    transaction_id=row.transaction_id,
                    merchant_order_no=row.merchant_order_no,
                    currency=row.amount.currency_code or currency,
                    amount_minor=row.amount.amount_minor,
                    paid_at=row.paid_at.ToDatetime(tzinfo=UTC),
                )
                for row in request.rows
            ]
        else:
            rows = reconciliation.parse_csv(request.csv, currency)
        _, report = await statements.import_statement(
            self.uow(), subject_of(context), request.provider, request.statement_id, rows
        )
        return statement_message(report)

    async def RepairFromStatement(
        self, request: orders_pb2.RepairFromStatementRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.RepairFromStatementResponse:
        record, changes = await statements.repair(
            self.uow,
            self.policy,
            subject_of(context),
            request.statement_id,
            request.transaction_id,
            request.order_id,
        )
        self._poke(changes)
        return orders_pb2.RepairFromStatementResponse(payment=payment_message(record))

    async def ListDeadLetters(
        self, request: orders_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListDeadLettersResponse:
        rows, token = await queries.list_dead_letters(
            self.uow(), request.page.page_size, request.page.page_token
        )
        return orders_pb2.ListDeadLettersResponse(
            dead_letters=[
                orders_pb2.DeadLetter(
                    dead_letter_id=row.dead_letter_id,
                    kind=row.kind,
                    order_id=row.order_id or "",
                    error=row.error,
                    attempts=row.attempts,
                    failed_at=timestamp(row.failed_at),
                )
                for row in rows
            ],
            page=common_pb2.PageResponse(next_page_token=token),
        )

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
            stored = await handlers.get_order(self.uow(), self.policy.keys, ident)
            ok = stored.step is None and not stored.step_dead
            return orders_pb2.ReplayDeadLetterResponse(succeeded=ok, error="" if ok else "step still pending")
        raise InvalidArgument("dead_letter_id", "must be payment:<payment id> or step:<order id>")

    async def ReplayDeadSteps(
        self, request: orders_pb2.ReplayDeadStepsRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReplayDeadStepsResponse:
        result = await handlers.replay_dead_steps(
            self.uow(),
            request.reason_contains.strip(),
            request.failed_from.ToDatetime(tzinfo=UTC) if request.HasField("failed_from") else None,
            request.failed_to.ToDatetime(tzinfo=UTC) if request.HasField("failed_to") else None,
            request.max_steps,
            request.dry_run,
        )
        if result.replayed and self.orchestrator is not None:
            self.orchestrator.poke()  # the steps run in the background, at the process manager's pace
        return orders_pb2.ReplayDeadStepsResponse(
            matched=result.matched, replayed=len(result.replayed), order_ids=result.replayed
        )

    # ---- status anchor ------------------------------------------------------------------------

    async def ReportSourceStatus(
        self, request: orders_pb2.ReportSourceStatusRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ReportSourceStatusResponse:
        report = handlers.SourceReport(
            source=request.source,
            order_id=request.order_id,
            channel=_channel(request.channel),
            channel_order_id=request.channel_order_id,
            fields=json_format.MessageToDict(request.fields) if request.HasField("fields") else {},
            reported_at=_optional_time(request, "reported_at"),
        )
        order, observation, changed, changes = await handlers.report_source_status(
            self.uow(), self.policy, report, scope_of(context)
        )
        self._poke(changes)
        return orders_pb2.ReportSourceStatusResponse(
            order=order_message(order, _reveal(context)),
            rule=observation.rule if observation else "",
            means=[status_value(status) for status in sorted(observation.means)] if observation else [],  # type: ignore[misc]
            status_changed=changed,
        )

    async def GetStatusRules(
        self, request: orders_pb2.GetStatusRulesRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetStatusRulesResponse:
        rules = self.policy.rules
        return orders_pb2.GetStatusRulesResponse(
            version=rules.version,
            rules=[
                orders_pb2.StatusRule(
                    name=rule.name,
                    source=rule.source,
                    when=[condition.text for condition in rule.when],
                    status=status_value(rule.status),  # type: ignore[arg-type]
                    means=[status_value(status) for status in sorted(rule.means)],  # type: ignore[misc]
                    waybill_from=rule.waybill_from or "",
                    scan_out=rule.scan_out,
                    raw_status_field=rule.raw_status_field or "",
                )
                for rule in rules.rules
            ],
        )

    async def GetDriftReport(
        self, request: orders_pb2.GetDriftReportRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.GetDriftReportResponse:
        if request.limit < 0 or request.limit > 10_000:
            raise InvalidArgument("limit", "must be between 0 and 10000")
        report = await queries.drift_report(self.uow(), request.source.strip().upper(), request.limit or 1000)
        return orders_pb2.GetDriftReportResponse(
            drifts=[
                orders_pb2.Drift(
                    order_id=drift.order_id,
                    source=drift.source,
                    canonical_status=status_value(drift.canonical_status),  # type: ignore[arg-type]
                    source_status=drift.source_status,
                    source_means=[status_value(status) for status in drift.source_means],  # type: ignore[misc]
                    canonical_age_seconds=drift.canonical_age_seconds,
                    source_age_seconds=drift.source_age_seconds,
                )
                for drift in report.drifts
            ],
            per_source=dict(report.per_source),
            generated_at=timestamp(report.generated_at),
        )

    async def AssignCustomers(
        self, request: orders_pb2.AssignCustomersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.AssignCustomersResponse:
        assigned = await handlers.assign_customers(
            self.uow(), request.agent_id, list(request.buyer_ids), request.replace
        )
        return orders_pb2.AssignCustomersResponse(buyer_ids=assigned)

    async def ListQuarantine(
        self, request: orders_pb2.ListQuarantineRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListQuarantineResponse:
        rows, token = await queries.list_quarantine(
            self.uow(),
            self.policy.keys,
            _channel(request.channel),
            request.page.page_size,
            request.page.page_token,
            _reveal(context),
        )
        return orders_pb2.ListQuarantineResponse(
            payloads=[
                orders_pb2.QuarantinedPayload(
                    quarantine_id=row.quarantine_id,
                    channel=_channel_value(Channel(row.channel) if row.channel else None),  # type: ignore[arg-type]
                    channel_order_id=row.channel_order_id,
                    error_field=row.error_field,
                    reason=row.reason,
                    payload_json=row.payload,
                    received_at=timestamp(row.received_at),
                )
                for row in rows
            ],
            page=common_pb2.PageResponse(next_page_token=token),
        )


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


def roles_of(context: grpc.aio.ServicerContext) -> list[str]:
    return sorted(identity.current().roles)


def _reveal(context: grpc.aio.ServicerContext) -> bool:
    """Unmasked for roles that may see personal data, or for the gateway's audited reveal (only the
    gateway's key may assert it)."""
    principal = identity.current()
    return masking.may_see_pii(principal.roles) or principal.reveal


# ---- proto → domain ------------------------------------------------------------------------------


def ingest_command(request: orders_pb2.IngestOrderRequest) -> IngestCommand:
    """The domain's command; what only the request can show wrong (an unknown enum number, amounts in
    another currency) is reported together with the domain's own findings, in field order."""
    found: list[tuple[str, str]] = []
    known_channel = request.channel in orders_pb2.Channel.values()
    if not known_channel:
        found.append(("channel", f"unknown value {request.channel}"))
    priority = _priority(request.priority, found)
    currency = request.lines[0].unit_price.currency_code if request.lines else ""
    if is_currency_code(currency):
        found += _other_currencies(request, currency)
    lines = tuple(
        OrderLine(
            sku=line.sku,
            title=line.title,
            quantity=line.quantity,
            unit_price_minor=line.unit_price.amount_minor,
            discount_minor=line.discount.amount_minor,
        )
        for line in request.lines
    )
    discounts = []
    for index, discount in enumerate(request.discounts):
        if discount.kind not in orders_pb2.DiscountKind.values():
            found.append((f"discounts[{index}].kind", f"unknown value {discount.kind}; {_DISCOUNT_KINDS}"))
        elif discount.kind == orders_pb2.DISCOUNT_KIND_UNSPECIFIED:
            found.append((f"discounts[{index}].kind", _DISCOUNT_KINDS))
        else:
            discounts.append(
                Discount(
                    DiscountKind(orders_pb2.DiscountKind.Name(discount.kind).removeprefix("DISCOUNT_KIND_")),
                    discount.amount.amount_minor,
                    discount.reference,
                )
            )
    command = IngestCommand(
        channel=_channel(request.channel) if known_channel else None,
        channel_order_id=request.channel_order_id,
        buyer_id=request.buyer_id,
        currency=currency,
        lines=lines,
        shipping_address=_address(request.shipping_address) if request.HasField("shipping_address") else None,
        shipping_fee_minor=request.shipping_fee.amount_minor,
        placed_at=_optional_time(request, "placed_at"),
        discounts=tuple(discounts),
        channel_status=request.channel_status,
        paid_at=_optional_time(request, "paid_at"),
        cancelled=request.cancelled,
        channel_modified_at=_optional_time(request, "channel_modified_at"),
        buyer_note=request.buyer_note,
        priority=priority,
    )
    if found:
        named = {field for field, _ in found}
        found += [v for v in model_violations(command) if v[0] not in named]
        raise InvalidArgument.of(in_field_order(found, orders_pb2.IngestOrderRequest.DESCRIPTOR))
    return command


_DISCOUNT_KINDS = "must be PROMOTION, COUPON or POINTS"


def _priority(value: int, found: list[tuple[str, str]]) -> Priority | None:
    """UNSPECIFIED is None (standard); an unknown number is reported with the request's other faults."""
    if value not in orders_pb2.OrderPriority.values():
        found.append(("priority", f"unknown value {value}"))
        return None
    if value == orders_pb2.ORDER_PRIORITY_UNSPECIFIED:
        return None
    return Priority(orders_pb2.OrderPriority.Name(value).removeprefix("ORDER_PRIORITY_"))


def _other_currencies(request: orders_pb2.IngestOrderRequest, currency: str) -> list[tuple[str, str]]:
    """Every amount must be in the order's currency, its first line's."""
    amounts = [(f"lines[{i}].unit_price", line.unit_price) for i, line in enumerate(request.lines)]
    amounts += [
        (f"lines[{i}].discount", line.discount)
        for i, line in enumerate(request.lines)
        if line.HasField("discount")
    ]
    if request.HasField("shipping_fee"):
        amounts.append(("shipping_fee", request.shipping_fee))
    amounts += [(f"discounts[{i}].amount", d.amount) for i, d in enumerate(request.discounts)]
    return [
        (f"{where}.currency_code", f"must be {currency}, the currency of the order's first line")
        for where, money in amounts
        if money.currency_code != currency
    ]


def channel_payload(request: orders_pb2.IngestChannelOrderRequest) -> handlers.ChannelPayload:
    if request.HasField("payload") and request.payload_json:
        raise InvalidArgument("payload_json", "send payload or payload_json, not both")
    if request.payload_json:
        payload = inputs.loads(request.payload_json, "payload_json")
        if not isinstance(payload, dict):
            raise InvalidArgument("payload_json", "must be a JSON object")
        return handlers.ChannelPayload(_channel(request.channel), payload)
    if not request.HasField("payload"):
        raise InvalidArgument("payload", "is required: the channel's order as a JSON object")
    payload = json_format.MessageToDict(request.payload)
    inputs.check_document(payload, "payload")
    return handlers.ChannelPayload(_channel(request.channel), _whole_numbers(payload))


def _whole_numbers(value: Any) -> Any:
    """Struct carries every number as a double; a channel's ids and counts are integers again."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def notification(request: orders_pb2.ReportPaymentRequest, provider: str) -> pay.PaymentNotification:
    if request.status not in orders_pb2.PaymentStatus.values():
        raise InvalidArgument(
            "status", f"unknown value {request.status}; must be SUCCESS, FAILED, CLOSED or REFUND"
        )
    if request.status == orders_pb2.PAYMENT_STATUS_UNSPECIFIED:
        raise InvalidArgument("status", "must be SUCCESS, FAILED, CLOSED or REFUND")
    if not request.HasField("paid_at"):
        raise InvalidArgument("paid_at", "is required")
    return pay.PaymentNotification(
        provider=provider,
        transaction_id=request.transaction_id,
        merchant_order_no=request.merchant_order_no,
        currency=request.amount.currency_code,
        amount_minor=request.amount.amount_minor,
        paid_at=request.paid_at.ToDatetime(tzinfo=UTC),
        status=pay.PaymentStatus(
            orders_pb2.PaymentStatus.Name(request.status).removeprefix("PAYMENT_STATUS_")
        ),
    )


def order_filter(
    message: orders_pb2.OrderFilter, scope: Scope | None = None, roles: Iterable[str] = ()
) -> queries.OrderFilter:
    """The query's filter; a lookup by the full phone only for roles that see it unmasked (masking)."""
    if message.buyer_phone and not masking.may_match_sealed(roles):
        raise PermissionDenied(
            "filter.buyer_phone: looking orders up by phone is only for roles that see the phone unmasked"
        )
    statuses: list[OrderStatus] = []
    for index, value in enumerate(message.statuses):
        if value not in orders_pb2.OrderStatus.values():
            raise InvalidArgument(f"filter.statuses[{index}]", f"unknown value {value}")
        if value == orders_pb2.ORDER_STATUS_UNSPECIFIED:
            raise InvalidArgument(f"filter.statuses[{index}]", "is not an order status")
        statuses.append(OrderStatus(orders_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")))
    found_channels: list[Channel] = []
    for index, number in enumerate(message.channels):
        found = _channel(number, f"filter.channels[{index}]")
        if found is None:
            raise InvalidArgument(f"filter.channels[{index}]", "is not a channel")
        found_channels.append(found)
    return queries.OrderFilter(
        statuses=tuple(statuses),
        channels=tuple(found_channels),
        created_from=_optional_time(message, "created_from"),
        created_to=_optional_time(message, "created_to"),
        warehouse_id=message.warehouse_id,
        buyer_id=message.buyer_id,
        buyer_phone=message.buyer_phone,
        scope=scope or EVERYTHING,
    )


def _optional_time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def _channel(value: int, field: str = "channel") -> Channel | None:
    """None when unset; a number this API does not know is refused, never read as "unset"."""
    if value == orders_pb2.CHANNEL_UNSPECIFIED:
        return None
    if value not in orders_pb2.Channel.values():
        raise InvalidArgument(field, f"unknown value {value}")
    return Channel(orders_pb2.Channel.Name(value).removeprefix("CHANNEL_"))


def _channel_value(channel: Channel | None) -> str:
    return f"CHANNEL_{channel.value}" if channel else "CHANNEL_UNSPECIFIED"


def _status_name(status: str | None) -> str:
    return f"ORDER_STATUS_{status}" if status else "ORDER_STATUS_UNSPECIFIED"


def _address(address: common_pb2.Address) -> Address:
    return Address(
        recipient_name=address.recipient_name,
        phone=address.phone,
        country_code=address.country_code,
        province=address.province,
        city=address.city,
        district=address.district,
        detail=address.detail,
        postal_code=address.postal_code,
    )


# ---- domain → proto ------------------------------------------------------------------------------


def stored_message(stored: Stored, reveal: bool) -> orders_pb2.Order:
    return order_message(stored.order, reveal, "dead-lettered" if stored.step_dead else (stored.step or ""))


def order_message(order: Order, reveal: bool = False, pending_step: str = "") -> orders_pb2.Order:
    def money(amount: int) -> common_pb2.Money:
        return common_pb2.Money(currency_code=order.currency, amount_minor=amount)

    address = order.shipping_address
    name, phone, detail, postal = address.recipient_name, address.phone, address.detail, address.postal_code
    if not reveal:
        name, phone, detail = masking.mask_name(name), masking.mask_phone(phone), masking.mask_detail(detail)
        postal = ""
    message = orders_pb2.Order(
        order_id=order.order_id,
        channel=_channel_value(order.channel),  # type: ignore[arg-type]
        channel_order_id=order.channel_order_id,
        status=status_value(order.status),  # type: ignore[arg-type]
        buyer_id=order.buyer_id,
        lines=[
            orders_pb2.OrderLine(
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
                discount=money(line.discount_minor),
                amounts=orders_pb2.LineAmounts(
                    goods=money(share.goods_minor),
                    promotion=money(share.promotion_minor),
                    coupon=money(share.coupon_minor),
                    points=money(share.points_minor),
                    shipping=money(share.shipping_minor),
                    paid=money(share.paid_minor),
                ),
            )
            for line, share in zip(order.lines, order.shares, strict=True)
        ],
        shipping_address=common_pb2.Address(
            recipient_name=name,
            phone=phone,
            country_code=address.country_code,
            province=address.province,
            city=address.city,
            district=address.district,
            detail=detail,
            postal_code=postal,
        ),
        shipping_fee=money(order.shipping_fee_minor),
        total=money(order.payable_minor),
        placed_at=timestamp(order.placed_at),
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        discounts=[
            orders_pb2.Discount(
                kind=f"DISCOUNT_KIND_{discount.kind.value}",  # type: ignore[arg-type]
                amount=money(discount.amount_minor),
                reference=discount.reference,
            )
            for discount in order.discounts
        ],
        status_reason=order.status_reason,
        warehouse_ids=list(order.warehouses),
        waybill_no=order.waybill_no,
        channel_status=order.channel_status,
        buyer_note=order.buyer_note,
        masked=not reveal,
        pending_step=pending_step,
        priority=f"ORDER_PRIORITY_{order.priority.value}",  # type: ignore[arg-type]
    )
    if order.paid_at is not None:
        message.paid_at.CopyFrom(timestamp(order.paid_at))
    return message


def payment_message(record: handlers.PaymentRecord) -> orders_pb2.Payment:
    note = record.notification
    return orders_pb2.Payment(
        payment_id=record.payment_id,
        provider=note.provider,
        transaction_id=note.transaction_id,
        merchant_order_no=note.merchant_order_no,
        order_id=record.order_id or "",
        amount=common_pb2.Money(currency_code=note.currency, amount_minor=note.amount_minor),
        paid_at=timestamp(note.paid_at),
        status=f"PAYMENT_STATUS_{note.status.value}",  # type: ignore[arg-type]
        state=f"PAYMENT_STATE_{record.state.value}",  # type: ignore[arg-type]
        reason=record.reason,
        attempts=record.attempts,
        received_at=timestamp(record.received_at),
    )


def statement_message(report: dict[str, Any]) -> orders_pb2.ImportStatementResponse:
    def item(found: dict[str, Any]) -> orders_pb2.ReconciliationItem:
        message = orders_pb2.ReconciliationItem(
            kind=found["kind"],
            order_id=found["order_id"],
            payment_id=found["payment_id"],
            candidate_order_ids=found["candidates"],
            detail=found["detail"],
        )
        row = found["row"]
        if row is not None:
            message.row.CopyFrom(
                orders_pb2.StatementRow(
                    transaction_id=row["transaction_id"],
                    merchant_order_no=row["merchant_order_no"],
                    amount=common_pb2.Money(currency_code=row["currency"], amount_minor=row["amount_minor"]),
                    paid_at=timestamp(datetime.fromisoformat(row["paid_at"])),
                )
            )
        return message

    return orders_pb2.ImportStatementResponse(
        statement_id=report["statement_id"],
        rows=report["rows"],
        matched=report["matched"],
        paid_not_recorded=[item(found) for found in report["paid_not_recorded"]],
        recorded_not_paid=[item(found) for found in report["recorded_not_paid"]],
        amount_mismatches=[item(found) for found in report["amount_mismatches"]],
    )
