"""What the gateway serves itself: tokens, chunked uploads, webhooks, reveal, the audit log, alerts (the
live feed and the records).

A thin servicer: each method gets the request, the call context and the admitted caller (see `gate.py`),
maps the request in (`mappers.py`), calls its use case (`handlers/`) and maps the answer out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
from google.api import httpbody_pb2

from oms.gateway.v1 import gateway_pb2
from services.gateway import mappers
from services.gateway.bus_state import BusState
from services.gateway.domain.errors import TooManyAttempts
from services.gateway.domain.principal import Caller
from services.gateway.gate import trailing
from services.gateway.handlers.alert_desk import AlertDesk
from services.gateway.handlers.alerts import Watchers
from services.gateway.handlers.audit import AuditLogReader
from services.gateway.handlers.console import ConsoleAssets
from services.gateway.handlers.provider_notifications import ProviderNotifications
from services.gateway.handlers.reveal import Reveal
from services.gateway.handlers.tokens import Tokens
from services.gateway.handlers.tracking_pushes import TrackingPushes
from services.gateway.handlers.uploads import Uploads
from services.gateway.handlers.users import ConsoleUsers
from services.gateway.handlers.webhooks import Webhooks
from services.gateway.proxy import LocalMethod

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name


T = TypeVar("T")


async def _unless_blocked(context: Any, attempt: Awaitable[T]) -> T:
    """A credential check's answer; a blocked id or address is RESOURCE_EXHAUSTED with retry-after."""
    try:
        return await attempt
    except TooManyAttempts as blocked:
        context.set_trailing_metadata(trailing(blocked.retry_after))
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, blocked.message)
        raise


class GatewayApi:
    def __init__(
        self,
        tokens: Tokens,
        uploads: Uploads,
        webhooks: Webhooks,
        reveal: Reveal,
        audit_log: AuditLogReader,
        watchers: Watchers,
        tracking_pushes: TrackingPushes,
        provider_notifications: ProviderNotifications,
        alert_desk: AlertDesk,
        users: ConsoleUsers,
        console: ConsoleAssets,
        bus_state: BusState,
    ) -> None:
        self.tokens = tokens
        self.uploads = uploads
        self.webhooks = webhooks
        self.reveal = reveal
        self.audit_log = audit_log
        self.watchers = watchers
        self.tracking_pushes = tracking_pushes
        self.provider_notifications = provider_notifications
        self.alert_desk = alert_desk
        self.users = users
        self.console = console
        self.bus_state = bus_state

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
            "ReceiveTrackingPush": LocalMethod(self.tracking_push, audits_itself=True),
            "ReceiveProviderNotification": LocalMethod(self.provider_notification, audits_itself=True),
            "RevealOrder": LocalMethod(self.reveal_order, audits_itself=True),
            "ListAuditRecords": LocalMethod(self.list_audit_records),
            "WatchAlerts": LocalMethod(self.watch_alerts),
            "ListAlerts": LocalMethod(self.list_alerts),
            "AcknowledgeAlert": LocalMethod(self.acknowledge_alert),
            "ResolveAlert": LocalMethod(self.resolve_alert),
            "SignIn": LocalMethod(self.sign_in),
            "PutUser": LocalMethod(self.put_user),
            "GetConsoleAsset": LocalMethod(self.console_asset),
            "GetPipeline": LocalMethod(self.pipeline),
        }

    async def sign_in(
        self, request: gateway_pb2.SignInRequest, context: Any, caller: Caller
    ) -> gateway_pb2.SignInResponse:
        session = await _unless_blocked(
            context, self.users.sign_in(request.username, request.password, caller)
        )
        return gateway_pb2.SignInResponse(
            access_token=session.access_token,
            token_type="Bearer",
            expires_in=session.expires_in,
            subject=session.user.subject,
            roles=sorted(session.user.roles),
            customer_id=session.user.customer_id,
        )

    async def put_user(
        self, request: gateway_pb2.PutUserRequest, context: Any, caller: Caller
    ) -> gateway_pb2.PutUserResponse:
        user, created = await self.users.put(
            request.subject, request.password, request.roles, request.customer_id
        )
        return gateway_pb2.PutUserResponse(
            subject=user.subject, roles=sorted(user.roles), customer_id=user.customer_id, created=created
        )

    async def pipeline(
        self, request: gateway_pb2.GetPipelineRequest, context: Any, caller: Caller
    ) -> gateway_pb2.GetPipelineResponse:
        return mappers.pipeline_response(await self.bus_state.read())

    async def console_asset(
        self, request: gateway_pb2.GetConsoleAssetRequest, context: Any, caller: Caller
    ) -> gateway_pb2.GetConsoleAssetResponse:
        asset = self.console.get(request.path)
        return gateway_pb2.GetConsoleAssetResponse(
            asset=httpbody_pb2.HttpBody(content_type=asset.content_type, data=asset.data)
        )

    async def issue_token(
        self, request: gateway_pb2.IssueTokenRequest, context: Any, caller: Caller
    ) -> gateway_pb2.IssueTokenResponse:
        issued = await _unless_blocked(
            context, self.tokens.issue(request.client_id, request.client_secret, caller)
        )
        return gateway_pb2.IssueTokenResponse(
            access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in
        )

    async def begin_upload(
        self, request: gateway_pb2.BeginUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.BeginUploadResponse:
        state = await self.uploads.begin(caller, mappers.begin_command(request), "BeginUpload")
        return gateway_pb2.BeginUploadResponse(upload=mappers.upload_message(state))

    async def put_chunk(
        self, request: gateway_pb2.PutChunkRequest, context: Any, caller: Caller
    ) -> gateway_pb2.PutChunkResponse:
        state = await self.uploads.put_chunk(caller, request.upload_id, request.index, request.data)
        return gateway_pb2.PutChunkResponse(upload=mappers.upload_message(state))

    async def get_upload(
        self, request: gateway_pb2.GetUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.GetUploadResponse:
        state = await self.uploads.status(caller, request.upload_id)
        return gateway_pb2.GetUploadResponse(upload=mappers.upload_message(state))

    async def complete_upload(
        self, request: gateway_pb2.CompleteUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.CompleteUploadResponse:
        completion = await self.uploads.complete(caller, request.upload_id, "CompleteUpload")
        return mappers.completion_response(completion)

    async def abort_upload(
        self, request: gateway_pb2.AbortUploadRequest, context: Any, caller: Caller
    ) -> gateway_pb2.AbortUploadResponse:
        await self.uploads.abort(caller, request.upload_id)
        return gateway_pb2.AbortUploadResponse()

    async def upload_stream(
        self, requests: AsyncIterator[gateway_pb2.UploadStreamRequest], context: Any, caller: Caller
    ) -> gateway_pb2.UploadStreamResponse:
        completion = await self.uploads.stream(caller, mappers.stream_parts(requests), "UploadStream")
        return mappers.stream_response(completion)

    async def _webhook(self, kind: str, sender: str, body: bytes, context: Any, caller: Caller) -> Any:
        metadata = {
            key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
        }
        timestamp, signature = mappers.webhook_signature(metadata)
        result = await self.webhooks.receive(kind, sender, body, timestamp, signature, caller)
        return mappers.webhook_result(result)

    async def payment_webhook(
        self, request: gateway_pb2.ReceivePaymentWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceivePaymentWebhookResponse:
        result = await self._webhook("payment", request.sender, request.body.data, context, caller)
        return gateway_pb2.ReceivePaymentWebhookResponse(result=result)

    async def carrier_webhook(
        self, request: gateway_pb2.ReceiveCarrierWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveCarrierWebhookResponse:
        result = await self._webhook("carrier", request.sender, request.body.data, context, caller)
        return gateway_pb2.ReceiveCarrierWebhookResponse(result=result)

    async def channel_webhook(
        self, request: gateway_pb2.ReceiveChannelWebhookRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveChannelWebhookResponse:
        result = await self._webhook("channel", request.sender, request.body.data, context, caller)
        return gateway_pb2.ReceiveChannelWebhookResponse(result=result)

    async def tracking_push(
        self, request: gateway_pb2.ReceiveTrackingPushRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveTrackingPushResponse:
        reply = await self.tracking_pushes.receive(
            request.carrier, request.token, request.body.content_type, request.body.data, caller
        )
        return gateway_pb2.ReceiveTrackingPushResponse(
            reply=httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)
        )

    async def provider_notification(
        self, request: gateway_pb2.ReceiveProviderNotificationRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ReceiveProviderNotificationResponse:
        headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        reply = await self.provider_notifications.receive(
            request.provider, headers, request.body.data, caller
        )
        return gateway_pb2.ReceiveProviderNotificationResponse(
            reply=httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)
        )

    async def reveal_order(
        self, request: gateway_pb2.RevealOrderRequest, context: Any, caller: Caller
    ) -> gateway_pb2.RevealOrderResponse:
        order = await self.reveal.reveal(caller, request.order_id, request.reason)
        return gateway_pb2.RevealOrderResponse(order=order)

    async def list_audit_records(
        self, request: gateway_pb2.ListAuditRecordsRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ListAuditRecordsResponse:
        records, token = await self.audit_log.page(
            request.principal,
            request.method,
            request.target_id,
            request.trace_id,
            request.page.page_size,
            request.page.page_token,
        )
        return mappers.audit_records_response(records, token)

    async def watch_alerts(
        self, request: gateway_pb2.WatchAlertsRequest, context: Any, caller: Caller
    ) -> AsyncIterator[gateway_pb2.WatchAlertsResponse]:
        async for alert in self.watchers.watch(caller, int(request.min_severity)):
            yield gateway_pb2.WatchAlertsResponse(alert=alert)

    async def list_alerts(
        self, request: gateway_pb2.ListAlertsRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ListAlertsResponse:
        records, token = await self.alert_desk.page(
            mappers.alert_filter(request), request.page.page_size, request.page.page_token
        )
        return mappers.alerts_response(records, token)

    async def acknowledge_alert(
        self, request: gateway_pb2.AcknowledgeAlertRequest, context: Any, caller: Caller
    ) -> gateway_pb2.AcknowledgeAlertResponse:
        record = await self.alert_desk.acknowledge(caller, request.alert_id.strip(), request.note)
        return gateway_pb2.AcknowledgeAlertResponse(alert=mappers.alert_message(record))

    async def resolve_alert(
        self, request: gateway_pb2.ResolveAlertRequest, context: Any, caller: Caller
    ) -> gateway_pb2.ResolveAlertResponse:
        record = await self.alert_desk.resolve(caller, request.alert_id.strip(), request.resolution)
        return gateway_pb2.ResolveAlertResponse(alert=mappers.alert_message(record))
