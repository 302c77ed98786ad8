"""Payment providers' notifications in their own formats (WeChat Pay v3, Alipay): checked at the edge
(signature, time window, decryption), then forwarded as their sender (`payment/<provider>`): a payment to
orders' ReportPayment, a refund to after-sales' ReportRefund. Answered as the provider's protocol
expects; a failure the provider should retry is answered with an error status, so it sends again on its
own schedule (orders and after-sales take each notification once).

A notification that does not verify is refused (401) before anything reads it and is stored nowhere: it
is counted among the failed attempts only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import AFTERSALES, GATEWAY, ORDERS, allowed, rule_for
from services.gateway.domain.principal import Caller
from services.gateway.domain.webhooks import sender_principal
from services.gateway.handlers.ports import Aftersales, AuditLog, Orders
from services.gateway.handlers.tracking_pushes import RETRYABLE
from services.gateway.provider_notifications import (
    NotificationRejected,
    ProviderKeys,
    verify_alipay_notify,
    verify_wechat_notification,
    wechat_refund_of,
)
from services.kit.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

METHOD = f"/{GATEWAY}/ReceiveProviderNotification"
PAYMENT = f"{ORDERS}/ReportPayment"
REFUND = f"{AFTERSALES}/ReportRefund"
PROVIDERS = ("wechat_pay", "alipay")
WECHAT_OK = b'{"code":"SUCCESS","message":"\xe6\x88\x90\xe5\x8a\x9f"}'
ALIPAY_OK = b"success"
# Alipay's times are Beijing time without an offset ("2026-12-01 10:00:00")
BEIJING = "+08:00"


@dataclass(frozen=True)
class NotificationReply:
    content_type: str
    body: bytes


class ProviderNotifications:
    def __init__(
        self,
        keys: ProviderKeys,
        orders: Orders,
        aftersales: Aftersales,
        audit: AuditLog,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.orders = orders
        self.aftersales = aftersales
        self.audit = audit
        self.wall = wall

    async def receive(
        self, provider: str, headers: Mapping[str, str], body: bytes, caller: Caller
    ) -> NotificationReply:
        provider = provider.strip().lower()
        if provider not in PROVIDERS:
            raise InvalidArgument("provider", f"must be one of {', '.join(PROVIDERS)}")
        try:
            if provider == "wechat_pay":
                return await self._wechat(headers, body, caller)
            return await self._alipay(body, caller)
        except NotificationRejected as rejected:
            self.audit.failed_attempt(caller, METHOD, "UNAUTHENTICATED", AttemptReason.PUSH_SIGNATURE)
            if rejected.check in ("format", "amount") and provider == "alipay":
                raise InvalidArgument("body", rejected.reason) from None
            raise Unauthenticated("authentication required") from None

    async def _wechat(self, headers: Mapping[str, str], body: bytes, caller: Caller) -> NotificationReply:
        if self.keys.wechat_platform_keys is None:
            raise NotFound("WeChat Pay notifications are not configured")
        notification = verify_wechat_notification(
            headers, body, self.keys.wechat_platform_keys, self.keys.wechat_apiv3_key, self.wall()
        )
        sent_by = Caller(sender_principal("payment", "wechat_pay"), caller.source_ip, caller.request_id)
        if notification.event_type.startswith("REFUND."):
            notice = wechat_refund_of(notification)
            await self._forward(
                sent_by,
                REFUND,
                [notice.refund_no, notice.out_trade_no],
                lambda: self.aftersales.report_refund(sent_by, "wechat_pay", notice),
            )
        elif notification.event_type == "TRANSACTION.SUCCESS":
            resource = dict(notification.resource)
            targets = [str(resource.get("transaction_id", "")), str(resource.get("out_trade_no", ""))]
            document = json.dumps(resource).encode()
            await self._forward(
                sent_by, PAYMENT, targets, lambda: self.orders.report_payment(sent_by, "wechat_pay", document)
            )
        else:
            await self.audit.audit(sent_by, METHOD, "OK", [], f"{notification.event_type}: not followed")
        return NotificationReply("application/json", WECHAT_OK)

    async def _alipay(self, body: bytes, caller: Caller) -> NotificationReply:
        if self.keys.alipay_public_key is None:
            raise NotFound("Alipay notifications are not configured")
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise InvalidArgument(
                "body", "an Alipay notification is a form (application/x-www-form-urlencoded)"
            ) from None
        notify = verify_alipay_notify(form, self.keys.alipay_public_key, self.keys.alipay_app_id)
        sent_by = Caller(sender_principal("payment", "alipay"), caller.source_ip, caller.request_id)
        paid_at = notify.gmt_payment.strip().replace(" ", "T")
        document = {
            "trade_no": notify.trade_no,
            "out_trade_no": notify.out_trade_no,
            "trade_status": notify.trade_status,
            "total_amount": form.get("total_amount", ""),
            "gmt_payment": f"{paid_at}{BEIJING}" if paid_at else "",
        }
        await self._forward(
            sent_by,
            PAYMENT,
            [notify.trade_no, notify.out_trade_no],
            lambda: self.orders.report_payment(sent_by, "alipay", json.dumps(document).encode()),
        )
        return NotificationReply("text/plain", ALIPAY_OK)

    async def _forward(
        self, sent_by: Caller, target: str, targets: list[str], call: Callable[[], Awaitable[object]]
    ) -> None:
        """Make `call` (the forwarded request) as the verified sender, if the policy lets its role, and
        audit it; a peer's passing failure asks the provider to notify again."""
        rule = rule_for(target)
        if rule is None or not allowed(rule, sent_by.principal.roles):
            raise PermissionDenied(f"payment providers may not call {target}")
        try:
            await call()
        except DomainError as error:
            await self.audit.audit(sent_by, METHOD, error.code.value, targets, str(error))
            raise
        except UpstreamFailure as error:
            await self.audit.audit(sent_by, METHOD, error.code, targets, error.details)
            if error.code in RETRYABLE:
                raise Unavailable("not taken right now; notify again") from None
            raise
        await self.audit.audit(sent_by, METHOD, "OK", [t for t in targets if t], target)
