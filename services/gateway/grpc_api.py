"""What the gateway serves itself: tokens, chunked uploads, webhooks, reveal, the audit log, alerts.

Each handler gets the request, the call context and the admitted caller (see `gate.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from oms.common.v1 import common_pb2
from oms.gateway.v1 import gateway_pb2
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.gateway import auth
from services.gateway.alerts import AlertHub
from services.gateway.credentials import ChecksBusy, FailureThrottle, SecretChecker
from services.gateway.gate import Caller, Gate, trailing
from services.gateway.policy import ORDERS, allowed, rule_for
from services.gateway.proxy import REFUSALS, LocalMethod
from services.gateway.store import (
    PENDING,
    answer_receipt,
    claim_receipt,
    first_receipt,
    list_audit,
    release_claim,
    take_over_claim,
)
from services.gateway.uploads import UploadError, UploadState, UploadStore
from services.gateway.visibility import OrderVisibility, SeenOrders
from services.gateway.webhooks import (
    FORWARDED,
    WebhookError,
    carrier_report,
    may_forward,
    payload_targets,
    payment_report,
    sender_principal,
)
from services.kit import inputs
from services.kit.db import UnitOfWork
from services.kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.kit.status import to_status
from services.kit.timestamps import timestamp

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
TARGETS = {
    gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH: "orders.batch",
    gateway_pb2.UPLOAD_TARGET_CHANNEL_ORDER: "orders.one",
    gateway_pb2.UPLOAD_TARGET_PAYMENT_STATEMENT: "payments.statement",
}
TARGET_ENUMS = {name: value for value, name in TARGETS.items()}
# the method a completed upload is handed to: the uploader must be allowed to call it
TARGET_METHODS = {
    "orders.batch": f"{ORDERS}/IngestOrders",
    "orders.one": f"{ORDERS}/IngestOrders",
    "payments.statement": f"{ORDERS}/ImportStatement",
}
STATUSES = {
    "open": gateway_pb2.UPLOAD_STATUS_OPEN,
    "verified": gateway_pb2.UPLOAD_STATUS_VERIFIED,
    "complete": gateway_pb2.UPLOAD_STATUS_COMPLETE,
    "failed": gateway_pb2.UPLOAD_STATUS_FAILED,
}
BATCH = 500
# the service the gateway's own handlers call
ORDERS_AUDIENCE = "orders"
WEBHOOK_METHODS = {
    kind: f"/{SERVICE_NAME}/Receive{kind.capitalize()}Webhook" for kind in ("payment", "carrier", "channel")
}
# a duplicate delivery waits this long for the first one's answer (its call to orders has a 10 s deadline)
WEBHOOK_WAIT_SECONDS = 15.0
WEBHOOK_POLL_SECONDS = 0.05
# a claim still unanswered after this long belongs to a delivery that died mid-way
WEBHOOK_CLAIM_SECONDS = 30.0


class GatewayApi:
    def __init__(
        self,
        gate: Gate,
        jwt: auth.JwtSettings,
        accounts: dict[str, auth.ServiceAccount],
        uploads: UploadStore,
        orders: grpc.aio.Channel,
        new_uow: Callable[[], UnitOfWork],
        hub: AlertHub,
        webhook_secrets: dict[str, bytes],
        signature_window_seconds: int,
        wall: Callable[[], float] = time.time,
        *,
        checker: SecretChecker,
        throttle: FailureThrottle,
        watch_streams_per_principal: int = 5,
        visibility: OrderVisibility | None = None,
    ) -> None:
        self.gate = gate
        self.jwt = jwt
        self.accounts = accounts
        self.uploads = uploads
        self.orders = orders_pb2_grpc.OrdersServiceStub(orders)
        self.new_uow = new_uow
        self.hub = hub
        self.webhook_secrets = webhook_secrets
        self.window = signature_window_seconds
        self.wall = wall
        self.checker = checker
        self.throttle = throttle
        self.watch_cap = watch_streams_per_principal
        self.visibility = visibility or OrderVisibility(gate, orders)
        # open WatchAlerts streams per principal on this replica
        self.watching: dict[str, int] = {}

    def methods(self) -> dict[str, LocalMethod]:
        return {
            "IssueToken": LocalMethod(self.issue_token),
            "BeginUpload": LocalMethod(self.begin_upload),
            "PutChunk": LocalMethod(self.put_chunk),
            "GetUpload": LocalMethod(self.get_upload),
            "CompleteUpload": LocalMethod(self.complete_upload),
            "AbortUpload": LocalMethod(self.abort_upload),
            "UploadStream": LocalMethod(self.upload_stream),
            # webhooks audit themselves: the record names the sender and the ids in the notification
            "ReceivePaymentWebhook": LocalMethod(self.payment_webhook, audits_itself=True),
            "ReceiveCarrierWebhook": LocalMethod(self.carrier_webhook, audits_itself=True),
            "ReceiveChannelWebhook": LocalMethod(self.channel_webhook, audits_itself=True),
            "RevealOrder": LocalMethod(self.reveal_order, audits_itself=True),
            "ListAuditRecords": LocalMethod(self.list_audit_records),
            "WatchAlerts": LocalMethod(self.watch_alerts),
        }

    # ---- tokens -------------------------------------------------------------------------------

    async def issue_token(
        self, request: gateway_pb2.IssueTokenRequest, context: Any, caller: Caller
    ) -> gateway_pb2.IssueTokenResponse:
        account = await self._client_account(request.client_id, request.client_secret, context, caller)
        ttl = 3600
        token = auth.issue_token(self.jwt, account.client_id, account.roles, self.wall(), ttl, kind="service")
        return gateway_pb2.IssueTokenResponse(access_token=token, token_type="Bearer", expires_in=ttl)

    async def _client_account(
        self, client_id: str, secret: str, context: Any, caller: Caller
    ) -> auth.ServiceAccount:
        """The throttle first (no hashing for a blocked id or address), then the capped, off-loop check."""
        wait = await self.throttle.blocked_for(client_id, caller.source_ip)
        if wait > 0:
            context.set_trailing_metadata(trailing(wait))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many failed attempts; retry after {math.ceil(wait)}s",
            )
        try:
            account = await self.checker.authenticate(self.accounts, client_id, secret)
        except ChecksBusy:
            raise Unavailable("too many credential checks at once; retry") from None
        except auth.AuthError:
            await self.throttle.failed(client_id, caller.source_ip)
            self.gate.failed_attempt(
                caller, f"/{SERVICE_NAME}/IssueToken", "UNAUTHENTICATED", "client_secret"
            )
            raise Unauthenticated("authentication required") from None
        await self.throttle.succeeded(client_id)
        return account

    # ---- chunked uploads ----------------------------------------------------------------------

    async def begin_upload(
        self, request: gateway_pb2.BeginUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.BeginUploadResponse:
        state = await self._begin(request, caller, "BeginUpload")
        return gateway_pb2.BeginUploadResponse(upload=upload_message(state))

    async def _begin(
        self, request: gateway_pb2.BeginUploadRequest, caller: Caller, method: str
    ) -> UploadState:
        target = TARGETS.get(request.target)
        if target is None:
            raise InvalidArgument(
                "target",
                "must be UPLOAD_TARGET_ORDERS_BATCH, UPLOAD_TARGET_CHANNEL_ORDER or "
                "UPLOAD_TARGET_PAYMENT_STATEMENT",
            )
        # refused before a byte is stored: an upload carries no rights its uploader lacks
        self._may_hand_over(caller, target, method)
        return await _upload_call(
            self.uploads.begin(
                _owner(caller),
                target,
                request.total_bytes,
                request.sha256.lower(),
                request.chunk_bytes,
                self.wall(),
                request.upload_id or None,
            )
        )

    async def put_chunk(
        self, request: gateway_pb2.PutChunkRequest, context: Any, caller: Caller
    ) -> gateway_pb2.PutChunkResponse:
        state = await _upload_call(
            self.uploads.put_chunk(
                _owner(caller), request.upload_id, request.index, request.data, self.wall()
            )
        )
        return gateway_pb2.PutChunkResponse(upload=upload_message(state))

    async def get_upload(
        self, request: gateway_pb2.GetUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.GetUploadResponse:
        state = await _upload_call(self.uploads.status(_owner(caller), request.upload_id))
        return gateway_pb2.GetUploadResponse(upload=upload_message(state))

    async def complete_upload(
        self, request: gateway_pb2.CompleteUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.CompleteUploadResponse:
        state, results = await self._complete(request.upload_id, caller, "CompleteUpload")
        results.upload.CopyFrom(upload_message(state))
        return results

    async def abort_upload(
        self, request: gateway_pb2.AbortUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.AbortUploadResponse:
        await _upload_call(self.uploads.abort(_owner(caller), request.upload_id))
        return gateway_pb2.AbortUploadResponse()

    async def upload_stream(
        self, requests: AsyncIterator[gateway_pb2.UploadStreamRequest], context: Any, caller: Caller
    ) -> gateway_pb2.UploadStreamResponse:
        state: UploadState | None = None
        index = 0
        async for part in requests:
            which = part.WhichOneof("part")
            if which == "header":
                if state is not None:
                    raise InvalidArgument("header", "comes once, first")
                state = await self._begin(part.header, caller, "UploadStream")
                index = min(state.missing, default=state.total_chunks)
            elif which == "chunk":
                if state is None:
                    raise InvalidArgument("header", "must come before the chunks")
                while index < state.total_chunks and index in state.received:
                    index += 1
                state = await _upload_call(
                    self.uploads.put_chunk(_owner(caller), state.upload_id, index, part.chunk, self.wall())
                )
                index += 1
        if state is None:
            raise InvalidArgument("header", "is required")
        final, results = await self._complete(state.upload_id, caller, "UploadStream")
        return gateway_pb2.UploadStreamResponse(
            upload=upload_message(final), orders=results.orders, statement=results.statement
        )

    async def _complete(
        self, upload_id: str, caller: Caller, method: str
    ) -> tuple[UploadState, gateway_pb2.CompleteUploadResponse]:
        """Verify, hand over, keep the target's answer: a repeated complete returns that first answer.
        The target is called as the uploader (the assertion names them, their roles and their scope),
        so its own row scope applies: a channel's key hands over its own channel's orders only."""
        owner = _owner(caller)
        state = await _upload_call(self.uploads.status(owner, upload_id))
        self._may_hand_over(caller, state.target, method)
        if state.status == "complete":
            return state, gateway_pb2.CompleteUploadResponse.FromString(state.result)
        payload = await _upload_call(self.uploads.assemble(owner, upload_id))
        metadata = self.gate.upstream_metadata(caller, {}, ORDERS_AUDIENCE)
        answer = gateway_pb2.CompleteUploadResponse()
        try:
            if state.target == "payments.statement":
                answer.statement.CopyFrom(
                    await self.orders.ImportStatement(
                        _statement_request(payload), metadata=metadata, timeout=300
                    )
                )
            else:
                answer.orders.CopyFrom(await self._ingest(_ingest_items(state.target, payload), metadata))
        except grpc.aio.AioRpcError as error:
            if error.code() in REFUSALS:
                self.gate.failed_attempt(
                    caller, f"/{SERVICE_NAME}/{method}", error.code().name, "service_refused"
                )
            raise _target_error(error) from None
        finished = await _upload_call(self.uploads.finish(owner, upload_id, answer.SerializeToString()))
        return finished, answer

    def _may_hand_over(self, caller: Caller, target: str, method: str) -> None:
        """The uploader must be allowed to call the target method itself (the policy's rule for it)."""
        target_method = TARGET_METHODS[target]
        rule = rule_for(target_method)
        if rule is None or not allowed(rule, caller.principal.roles):
            self.gate.failed_attempt(
                caller, f"/{SERVICE_NAME}/{method}", "PERMISSION_DENIED", "target_not_allowed"
            )
            raise PermissionDenied(
                f"target: the upload is handed to {target_method.rpartition('/')[2]}, "
                "which this caller may not call"
            )

    async def _ingest(
        self, items: list[orders_pb2.IngestItem], metadata: list[tuple[str, str]]
    ) -> orders_pb2.IngestOrdersResponse:
        results = orders_pb2.IngestOrdersResponse()
        for start in range(0, len(items), BATCH):
            reply = await self.orders.IngestOrders(
                orders_pb2.IngestOrdersRequest(items=items[start : start + BATCH]),
                metadata=metadata,
                timeout=120,
            )
            for result in reply.results:
                result.index += start
                results.results.append(result)
            results.created += reply.created
            results.unchanged += reply.unchanged
            results.updated += reply.updated
            results.stale += reply.stale
            results.rejected += reply.rejected
        return results

    # ---- webhooks -----------------------------------------------------------------------------

    def _verify(self, kind: str, sender: str, body: bytes, context: Any) -> None:
        """HMAC-SHA256 over `<timestamp>\\n<raw body>` with the sender's secret, in a time window."""
        metadata = {
            key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
        }
        # bound to its kind: a carrier's or a channel's secret never signs a payment
        secret = self.webhook_secrets.get(f"{kind}/{sender}")
        timestamp = metadata.get("x-oms-webhook-timestamp", "")
        signature = metadata.get("x-oms-webhook-signature", "")
        if secret is None or not timestamp.isdigit() or abs(self.wall() - int(timestamp)) > self.window:
            raise Unauthenticated("authentication required")
        expected = hmac.new(secret, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise Unauthenticated("authentication required")

    async def _webhook(
        self,
        kind: str,
        sender: str,
        body: bytes,
        context: Any,
        caller: Caller,
        forward: Callable[[Caller], Awaitable[tuple[str, list[str]]]],
    ) -> gateway_pb2.WebhookResult:
        """Verify, handle once, audit. The audit record names the sender and the ids the notification
        and its answer touch (order, channel order, transaction, waybill), whatever the outcome."""
        sender = sender.strip().lower()
        if not sender or len(sender) > 32:
            raise InvalidArgument("sender", "is required (at most 32 characters)")
        principal = sender_principal(kind, sender)
        sent_by = Caller(principal, caller.source_ip, caller.request_id)
        method = WEBHOOK_METHODS[kind]
        targets = payload_targets(kind, body)
        try:
            # a forged notification keeps its own record (not a counted one): it names the order and
            # transaction it tried to touch; the per-address rate limit bounds how many there can be
            self._verify(kind, sender, body, context)
            if not may_forward(kind, principal):
                raise PermissionDenied(f"{kind} webhooks may not call {FORWARDED[kind]}")
            result, touched = await self._handle_once(kind, sender, body, sent_by, forward)
        except DomainError as error:
            code, _ = to_status(error)
            await self.gate.audit(sent_by, method, code, targets, str(error))
            raise
        except grpc.aio.AioRpcError as error:
            await self.gate.audit(sent_by, method, error.code(), targets, error.details() or "")
            raise
        detail = "duplicate: the first delivery's answer" if result.duplicate else ""
        await self.gate.audit(sent_by, method, grpc.StatusCode.OK, [*targets, *touched], detail)
        return result

    async def _handle_once(
        self,
        kind: str,
        sender: str,
        body: bytes,
        sent_by: Caller,
        forward: Callable[[Caller], Awaitable[tuple[str, list[str]]]],
    ) -> tuple[gateway_pb2.WebhookResult, list[str]]:
        """The first delivery of a body claims its receipt in one INSERT and is handled; every other
        delivery, concurrent or later, waits for that first answer and gets it with `duplicate: true`."""
        digest = hashlib.sha256(body).hexdigest()
        give_up = time.monotonic() + WEBHOOK_WAIT_SECONDS
        while not await self._claim(kind, sender, digest):
            uow = self.new_uow()
            async with uow:
                first = await first_receipt(uow.conn, kind, sender, digest)
            if first is None:
                continue  # the first delivery failed and let its claim go: this one is handled afresh
            if first != PENDING:
                result = gateway_pb2.WebhookResult.FromString(first)
                result.duplicate = True
                return result, [result.reference]
            if time.monotonic() > give_up:
                raise Unavailable("the first delivery of this notification is still being handled; retry")
            await asyncio.sleep(WEBHOOK_POLL_SECONDS)
        try:
            reference, touched = await forward(sent_by)
        except WebhookError as error:
            await self._release(kind, sender, digest)
            raise InvalidArgument(error.field, error.problem) from None
        except grpc.aio.AioRpcError as error:
            await self._release(kind, sender, digest)
            if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                field, _, problem = (error.details() or "").partition(": ")
                raise InvalidArgument(field or "body", problem or "refused") from None
            raise
        except BaseException:
            await asyncio.shield(self._release(kind, sender, digest))
            raise
        result = gateway_pb2.WebhookResult(accepted=True, message="accepted", reference=reference)
        uow = self.new_uow()
        async with uow:
            await answer_receipt(uow.conn, kind, sender, digest, result.SerializeToString())
            await uow.commit()
        return result, [reference, *touched]

    async def _claim(self, kind: str, sender: str, digest: str) -> bool:
        now = datetime.now(UTC)
        uow = self.new_uow()
        async with uow:
            claimed = await claim_receipt(uow.conn, kind, sender, digest, now) or await take_over_claim(
                uow.conn, kind, sender, digest, now, now - timedelta(seconds=WEBHOOK_CLAIM_SECONDS)
            )
            await uow.commit()
        return claimed

    async def _release(self, kind: str, sender: str, digest: str) -> None:
        uow = self.new_uow()
        async with uow:
            await release_claim(uow.conn, kind, sender, digest)
            await uow.commit()

    async def payment_webhook(
        self, request: gateway_pb2.ReceivePaymentWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceivePaymentWebhookResponse:
        body = request.body.data

        async def forward(as_caller: Caller) -> tuple[str, list[str]]:
            report = payment_report(request.sender.strip().lower(), body)
            reply = await self.orders.ReportPayment(
                report, metadata=self.gate.upstream_metadata(as_caller, {}, ORDERS_AUDIENCE), timeout=10
            )
            return str(reply.payment.payment_id), [reply.payment.order_id]

        result = await self._webhook("payment", request.sender, body, context, caller, forward)
        return gateway_pb2.ReceivePaymentWebhookResponse(result=result)

    async def carrier_webhook(
        self, request: gateway_pb2.ReceiveCarrierWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveCarrierWebhookResponse:
        body = request.body.data

        async def forward(as_caller: Caller) -> tuple[str, list[str]]:
            report = carrier_report(request.sender.strip().lower(), body)
            reply = await self.orders.ReportSourceStatus(
                report, metadata=self.gate.upstream_metadata(as_caller, {}, ORDERS_AUDIENCE), timeout=10
            )
            return str(reply.order.order_id), [reply.order.channel_order_id]

        result = await self._webhook("carrier", request.sender, body, context, caller, forward)
        return gateway_pb2.ReceiveCarrierWebhookResponse(result=result)

    async def channel_webhook(
        self, request: gateway_pb2.ReceiveChannelWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveChannelWebhookResponse:
        body = request.body.data
        sender = request.sender.strip().lower()

        async def forward(as_caller: Caller) -> tuple[str, list[str]]:
            if not _is_channel(sender):
                raise WebhookError("sender", f"{sender} is not a sales channel")
            channel = f"CHANNEL_{sender.upper()}"
            reply = await self.orders.IngestChannelOrder(
                orders_pb2.IngestChannelOrderRequest(
                    channel=channel, payload_json=body.decode("utf-8", "replace")
                ),
                metadata=self.gate.upstream_metadata(as_caller, {}, ORDERS_AUDIENCE),
                timeout=10,
            )
            return str(reply.order.order_id), [reply.order.channel_order_id]

        result = await self._webhook("channel", sender, body, context, caller, forward)
        return gateway_pb2.ReceiveChannelWebhookResponse(result=result)

    # ---- reveal, audit, alerts ----------------------------------------------------------------

    async def reveal_order(
        self, request: gateway_pb2.RevealOrderRequest, context: Any, caller: Caller
    ) -> gateway_pb2.RevealOrderResponse:
        reason = request.reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidArgument(
                "reason", "is required: say why personal data is needed (at most 500 characters)"
            )
        method = f"{SERVICE_NAME}/RevealOrder"
        metadata = self.gate.upstream_metadata(caller, {}, ORDERS_AUDIENCE, reveal=True)
        try:
            reply = await self.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=request.order_id), metadata=metadata, timeout=10
            )
        except grpc.aio.AioRpcError as error:
            await self.gate.audit(
                caller, method, error.code(), [request.order_id], f"reveal refused: {reason}"
            )
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(error.details() or "order not found") from None
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                field, _, problem = (error.details() or "").partition(": ")
                raise InvalidArgument(field, problem) from None
            raise
        await self.gate.audit(caller, method, grpc.StatusCode.OK, [request.order_id], f"reveal: {reason}")
        return gateway_pb2.RevealOrderResponse(order=reply.order)

    async def list_audit_records(
        self, request: gateway_pb2.ListAuditRecordsRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ListAuditRecordsResponse:
        uow = self.new_uow()
        async with uow:
            records, token = await list_audit(
                uow.conn,
                request.principal,
                request.method,
                request.target_id,
                request.trace_id,
                request.page.page_size,
                request.page.page_token,
            )
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

    async def watch_alerts(
        self, request: gateway_pb2.WatchAlertsRequest, context: Any, caller: Caller
    ) -> AsyncIterator[gateway_pb2.WatchAlertsResponse]:
        who = f"{caller.principal.kind}:{caller.principal.subject}"
        if self.watching.get(who, 0) >= self.watch_cap:
            raise ResourceExhausted(
                f"at most {self.watch_cap} WatchAlerts streams per caller; close one before opening another"
            )
        self.watching[who] = self.watching.get(who, 0) + 1
        # a scoped watcher (an agent) sees only alerts about orders it may see (Reach.ORDER)
        seen = SeenOrders(self.visibility, caller)
        try:
            async with self.hub.subscribe(min_severity=int(request.min_severity)) as alerts:
                async for alert in alerts:
                    if await seen.sees(alert.order_id):
                        yield gateway_pb2.WatchAlertsResponse(alert=alert)
        finally:
            left = self.watching.pop(who) - 1
            if left:
                self.watching[who] = left


def upload_message(state: UploadState) -> gateway_pb2.Upload:
    return gateway_pb2.Upload(
        upload_id=state.upload_id,
        target=TARGET_ENUMS.get(state.target, 0),  # type: ignore[arg-type]
        total_bytes=state.total_bytes,
        sha256=state.sha256,
        chunk_bytes=state.chunk_bytes,
        total_chunks=state.total_chunks,
        missing_chunks=state.missing,
        status=STATUSES.get(state.status, 0),  # type: ignore[arg-type]
        expires_at=timestamp(datetime.fromtimestamp(state.expires_at, UTC)),
    )


def _statement_request(payload: bytes) -> orders_pb2.ImportStatementRequest:
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


def _ingest_items(target: str, payload: bytes) -> list[orders_pb2.IngestItem]:
    """`{"channel": "CHANNEL_SHOPEE", "orders": [...]}` or `{"channel": …, "order": {...}}`."""
    document = inputs.loads(payload, "payload")
    if not isinstance(document, dict):
        raise InvalidArgument("payload", "must be a JSON object with channel and orders")
    channel_name = str(document.get("channel", ""))
    if channel_name not in orders_pb2.Channel.keys() or channel_name == "CHANNEL_UNSPECIFIED":  # noqa: SIM118
        raise InvalidArgument("payload.channel", "must be a channel such as CHANNEL_SHOPEE")
    orders = document.get("orders") if target == "orders.batch" else [document.get("order")]
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


async def _upload_call(call: Any) -> Any:
    try:
        return await call
    except UploadError as error:
        if error.code == "not_found":
            raise NotFound(f"upload not found ({error.problem})") from None
        if error.code == "resource_exhausted":
            raise ResourceExhausted(f"{error.field}: {error.problem}") from None
        if error.code == "failed_precondition":
            raise FailedPrecondition(f"{error.field}: {error.problem}") from None
        raise InvalidArgument(error.field, error.problem) from None


# what a target's refusal becomes for the uploader: the same code and message
_TARGET_ERRORS: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def _target_error(error: grpc.aio.AioRpcError) -> Exception:
    """The target's refusal of a handed-over payload, for the uploader; anything else stays an error."""
    details = error.details() or ""
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        field, _, problem = details.partition(": ")
        if not problem:
            return InvalidArgument("payload", details)
        return InvalidArgument(f"payload.{field}", problem)
    kind = _TARGET_ERRORS.get(error.code())
    return error if kind is None else kind(details)


def _owner(caller: Caller) -> str:
    return caller.principal.subject or "anonymous"


def _is_channel(sender: str) -> bool:
    name = f"CHANNEL_{sender.upper()}"
    return name in orders_pb2.Channel.keys() and name != "CHANNEL_UNSPECIFIED"  # noqa: SIM118
