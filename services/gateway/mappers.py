"""Every proto ↔ domain conversion of the gateway's own methods, and of what it sends orders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf import struct_pb2

from oms.alerts.v1 import events_pb2 as alert_events
from oms.common.v1 import common_pb2
from oms.gateway.v1 import gateway_pb2
from oms.orders.v1 import orders_pb2
from services.gateway.domain import webhooks
from services.gateway.domain.alert_records import AlertFilter, AlertRecord, AlertState, Raised
from services.gateway.domain.audit import AuditRecord
from services.gateway.domain.pipeline import Pipeline
from services.gateway.domain.uploads import BeginUpload, Completion, Target, UploadState
from services.gateway.domain.webhooks import WebhookError, WebhookResult
from services.kit import inputs
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp

TARGETS = {
    gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH: Target.ORDERS_BATCH,
    gateway_pb2.UPLOAD_TARGET_CHANNEL_ORDER: Target.ORDER,
    gateway_pb2.UPLOAD_TARGET_PAYMENT_STATEMENT: Target.PAYMENT_STATEMENT,
}
TARGET_ENUMS = {name: value for value, name in TARGETS.items()}
STATUSES = {
    "open": gateway_pb2.UPLOAD_STATUS_OPEN,
    "verified": gateway_pb2.UPLOAD_STATUS_VERIFIED,
    "complete": gateway_pb2.UPLOAD_STATUS_COMPLETE,
    "failed": gateway_pb2.UPLOAD_STATUS_FAILED,
}
# the channel names orders knows (`CHANNEL_TAOBAO`, …)
CHANNELS = frozenset(orders_pb2.Channel.keys())
PAYMENT_STATUSES = {
    webhooks.PaymentStatus.SUCCESS: orders_pb2.PAYMENT_STATUS_SUCCESS,
    webhooks.PaymentStatus.CLOSED: orders_pb2.PAYMENT_STATUS_CLOSED,
    webhooks.PaymentStatus.FAILED: orders_pb2.PAYMENT_STATUS_FAILED,
    webhooks.PaymentStatus.REFUND: orders_pb2.PAYMENT_STATUS_REFUND,
}

# ---- uploads ---------------------------------------------------------------------------------------------


def begin_command(request: gateway_pb2.BeginUploadRequest) -> BeginUpload:
    return BeginUpload(
        TARGETS.get(request.target),
        request.total_bytes,
        request.sha256.lower(),
        request.chunk_bytes,
        request.upload_id or None,
    )


async def stream_parts(
    requests: AsyncIterator[gateway_pb2.UploadStreamRequest],
) -> AsyncIterator[BeginUpload | bytes]:
    """An UploadStream's parts in order: its header or a chunk."""
    async for part in requests:
        which = part.WhichOneof("part")
        if which == "header":
            yield begin_command(part.header)
        elif which == "chunk":
            yield part.chunk


def upload_message(state: UploadState) -> gateway_pb2.Upload:
    return gateway_pb2.Upload(
        upload_id=state.upload_id,
        target=TARGET_ENUMS.get(state.target, 0),  # type: ignore[call-overload]
        total_bytes=state.total_bytes,
        sha256=state.sha256,
        chunk_bytes=state.chunk_bytes,
        total_chunks=state.total_chunks,
        missing_chunks=state.missing,
        status=STATUSES.get(state.status, 0),  # type: ignore[arg-type]
        expires_at=timestamp(datetime.fromtimestamp(state.expires_at, UTC)),
    )


def completion_response(completion: Completion) -> gateway_pb2.CompleteUploadResponse:
    response = gateway_pb2.CompleteUploadResponse.FromString(completion.result)
    response.upload.CopyFrom(upload_message(completion.state))
    return response


def stream_response(completion: Completion) -> gateway_pb2.UploadStreamResponse:
    results = gateway_pb2.CompleteUploadResponse.FromString(completion.result)
    return gateway_pb2.UploadStreamResponse(
        upload=upload_message(completion.state), orders=results.orders, statement=results.statement
    )


def statement_request(payload: bytes) -> orders_pb2.ImportStatementRequest:
    """`{"provider": "wechat_pay", "statement_id": "…", "csv": "…", "currency_code": "CNY"}`."""
    document = inputs.loads(payload, "payload")
    if not isinstance(document, dict) or not isinstance(document.get("csv"), str):
        raise InvalidArgument("payload.csv", "is required: the statement as CSV text")
    return orders_pb2.ImportStatementRequest(
        provider=str(document.get("provider", "")),
        statement_id=str(document.get("statement_id", "")),
        csv=document["csv"],
        currency_code=str(document.get("currency_code", "")),
    )


def ingest_items(target: str, payload: bytes) -> list[orders_pb2.IngestItem]:
    """`{"channel": "CHANNEL_SHOPEE", "orders": [...]}` or `{"channel": …, "order": {...}}`."""
    document = inputs.loads(payload, "payload")
    if not isinstance(document, dict):
        raise InvalidArgument("payload", "must be a JSON object with channel and orders")
    channel_name = str(document.get("channel", ""))
    if channel_name not in CHANNELS or channel_name == webhooks.NO_CHANNEL:
        raise InvalidArgument("payload.channel", "must be a channel such as CHANNEL_SHOPEE")
    orders = document.get("orders") if target == Target.ORDERS_BATCH else [document.get("order")]
    if not isinstance(orders, list) or not orders:
        raise InvalidArgument("payload.orders", "must be a non-empty list of channel orders")
    return [
        orders_pb2.IngestItem(
            channel_order=orders_pb2.IngestChannelOrderRequest(
                channel=channel_name,  # type: ignore[arg-type]
                payload_json=json.dumps(order, ensure_ascii=False),
            )
        )
        for order in orders
    ]


# ---- webhooks --------------------------------------------------------------------------------------------


def webhook_document(body: bytes) -> object:
    """A notification's JSON, depth-bounded; not JSON is the sender's error, naming `body`."""
    try:
        return inputs.loads(body, "body")
    except InvalidArgument as error:
        raise WebhookError("body", error.problem) from None


def payment_report(sender: str, body: bytes) -> orders_pb2.ReportPaymentRequest:
    report = webhooks.payment_report(sender, webhook_document(body))
    return orders_pb2.ReportPaymentRequest(
        provider=report.provider,
        transaction_id=report.transaction_id,
        merchant_order_no=report.merchant_order_no,
        amount=common_pb2.Money(currency_code=report.currency_code, amount_minor=report.amount_minor),
        paid_at=timestamp(report.paid_at),
        status=PAYMENT_STATUSES[report.status],
    )


def carrier_report(sender: str, body: bytes) -> orders_pb2.ReportSourceStatusRequest:
    report = webhooks.carrier_report(sender, webhook_document(body), CHANNELS)
    fields = struct_pb2.Struct()
    fields.update(
        {"carrier": report.carrier, "waybill_no": report.waybill_no, "tracking": {"node": report.node}}
    )
    request = orders_pb2.ReportSourceStatusRequest(
        source="CARRIER", fields=fields, reported_at=timestamp(report.reported_at)
    )
    if report.order_id:
        request.order_id = report.order_id
    else:
        request.channel = report.channel  # type: ignore[assignment]
        request.channel_order_id = report.channel_order_id
    return request


def channel_order_request(sender: str, body: bytes) -> orders_pb2.IngestChannelOrderRequest:
    """A channel's own order payload, ingested as it is."""
    channel = webhooks.sales_channel(sender, CHANNELS)
    return orders_pb2.IngestChannelOrderRequest(
        channel=channel,  # type: ignore[arg-type]
        payload_json=body.decode("utf-8", "replace"),
    )


def webhook_result_bytes(result: WebhookResult) -> bytes:
    """As a receipt keeps it (the stored form outlives releases: it is the proto's wire form)."""
    return webhook_result(result).SerializeToString()


def webhook_result_of(stored: bytes) -> WebhookResult:
    result = gateway_pb2.WebhookResult.FromString(stored)
    return WebhookResult(result.accepted, result.message, result.reference, result.duplicate)


def webhook_result(result: WebhookResult) -> gateway_pb2.WebhookResult:
    return gateway_pb2.WebhookResult(
        accepted=result.accepted,
        message=result.message,
        reference=result.reference,
        duplicate=result.duplicate,
    )


def webhook_signature(metadata: dict[str, str]) -> tuple[str, str]:
    """The (timestamp, signature) a sender signs its notification with."""
    return metadata.get("x-oms-webhook-timestamp", ""), metadata.get("x-oms-webhook-signature", "")


# ---- audit -----------------------------------------------------------------------------------------------


def audit_records_response(records: list[AuditRecord], token: str) -> gateway_pb2.ListAuditRecordsResponse:
    return gateway_pb2.ListAuditRecordsResponse(
        records=[
            gateway_pb2.AuditRecord(
                audit_id=record.audit_id,
                at=timestamp(record.at),
                principal=record.principal,
                roles=list(record.roles),
                source_ip=record.source_ip,
                method=record.method,
                target_ids=list(record.target_ids),
                result=record.result,
                trace_id=record.trace_id,
                detail=record.detail,
            )
            for record in records
        ],
        page=common_pb2.PageResponse(next_page_token=token),
    )


# ---- alert records -------------------------------------------------------------------------------------

ALERT_STATES = {
    AlertState.OPEN: gateway_pb2.ALERT_STATE_OPEN,
    AlertState.ACKNOWLEDGED: gateway_pb2.ALERT_STATE_ACKNOWLEDGED,
    AlertState.RESOLVED: gateway_pb2.ALERT_STATE_RESOLVED,
}
ALERT_STATES_IN = {value: state for state, value in ALERT_STATES.items()}


def raised_of(alert: alert_events.AlertRaised, received_at: datetime) -> Raised:
    """An occurrence, as raised (or, without its time, as received)."""
    at = alert.occurred_at.ToDatetime(tzinfo=UTC) if alert.HasField("occurred_at") else received_at
    return Raised(
        event_id=alert.event_id,
        kind=alert.kind,
        severity=int(alert.severity),
        source=alert.source,
        order_id=alert.order_id,
        message=alert.message,
        dedupe_key=alert.dedupe_key,
        customer_id=alert.customer_id,
        channel=alert.channel,
        roles=tuple(alert.roles),
        at=at,
    )


def alert_filter(request: gateway_pb2.ListAlertsRequest) -> AlertFilter:
    state = None
    if request.state:
        state = ALERT_STATES_IN.get(request.state)
        if state is None:
            raise InvalidArgument("state", f"unknown state {request.state}")
    if request.min_severity < 0:
        raise InvalidArgument("min_severity", "unknown severity")
    return AlertFilter(
        state=state,
        min_severity=int(request.min_severity),
        kind=request.kind.strip(),
        source=request.source.strip(),
        order_id=request.order_id.strip(),
        assigned_to=request.assigned_to.strip(),
    )


def alert_message(record: AlertRecord) -> gateway_pb2.Alert:
    message = gateway_pb2.Alert(
        alert_id=record.alert_id,
        state=ALERT_STATES[record.state],
        kind=record.kind,
        severity=record.severity,  # type: ignore[arg-type]
        source=record.source,
        order_id=record.order_id,
        message=record.message,
        fold_key=record.fold_key,
        count=record.count,
        first_seen=timestamp(record.first_seen),
        last_seen=timestamp(record.last_seen),
        roles=record.roles,
        assigned_to=record.assigned_to,
        escalation_level=record.level,
        acknowledged_by=record.acknowledged_by,
        acknowledge_note=record.acknowledge_note,
        resolved_by=record.resolved_by,
        resolution=record.resolution,
    )
    for name in ("escalate_at", "acknowledged_at", "resolved_at"):
        at = getattr(record, name)
        if at is not None:
            getattr(message, name).CopyFrom(timestamp(at))
    return message


def alerts_response(records: list[AlertRecord], token: str) -> gateway_pb2.ListAlertsResponse:
    return gateway_pb2.ListAlertsResponse(
        alerts=[alert_message(record) for record in records],
        page=common_pb2.PageResponse(next_page_token=token),
    )


def pipeline_response(pipeline: Pipeline) -> gateway_pb2.GetPipelineResponse:
    reply = gateway_pb2.GetPipelineResponse()
    for outbox in pipeline.outboxes:
        reply.outboxes.add(
            service=outbox.service,
            unpublished=outbox.unpublished,
            capped=outbox.capped,
            oldest_age_seconds=outbox.oldest_age_seconds,
            reported_at=timestamp(outbox.reported_at),
        )
    for stream in pipeline.streams:
        out = reply.streams.add(stream=stream.stream, messages=stream.messages, last_sequence=stream.last_seq)
        for consumer in stream.consumers:
            lag = out.consumers.add(
                consumer=consumer.name,
                pending=consumer.pending,
                ack_pending=consumer.ack_pending,
                redelivered=consumer.redelivered,
            )
            if consumer.last_active is not None:
                lag.last_active.CopyFrom(timestamp(consumer.last_active))
    return reply
