"""Carriers' tracking pushes in their own formats (SF, Kuaidi100): verified, forwarded to logistics as
their sender, audited, and answered with what the carrier's protocol expects.

No receipt is kept (unlike the HMAC webhooks): logistics records each tracking node once, so a push
delivered twice changes nothing the second time, and carriers push often. A push that does not prove
its sender is refused (401) before anything reads it and is stored nowhere: it is only counted among
the failed attempts (address, method, reason class), never with its body or its token.
"""

from __future__ import annotations

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import GATEWAY, LOGISTICS, allowed, rule_for
from services.gateway.domain.principal import Caller
from services.gateway.domain.tracking_pushes import (
    CARRIERS,
    PushReply,
    PushSecrets,
    authentic,
    push_targets,
    pusher_principal,
)
from services.gateway.handlers.ports import AuditLog, Logistics
from services.kit.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

METHOD = f"/{GATEWAY}/ReceiveTrackingPush"
FORWARDED = f"{LOGISTICS}/ReportTracking"
RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


class TrackingPushes:
    def __init__(self, secrets: PushSecrets, logistics: Logistics, audit: AuditLog) -> None:
        self.secrets = secrets
        self.logistics = logistics
        self.audit = audit

    async def receive(
        self, carrier: str, token: str, content_type: str, body: bytes, caller: Caller
    ) -> PushReply:
        carrier = carrier.strip().lower()
        if carrier not in CARRIERS:
            raise InvalidArgument("carrier", f"must be one of {', '.join(CARRIERS)}")
        if not authentic(carrier, token, body, self.secrets):
            self.audit.failed_attempt(caller, METHOD, "UNAUTHENTICATED", AttemptReason.PUSH_SIGNATURE)
            raise Unauthenticated("authentication required")
        sent_by = Caller(pusher_principal(carrier), caller.source_ip, caller.request_id)
        targets = push_targets(carrier, body)
        try:
            rule = rule_for(FORWARDED)
            if rule is None or not allowed(rule, sent_by.principal.roles):
                raise PermissionDenied(f"carrier pushes may not call {FORWARDED}")
            reply = await self.logistics.report_tracking(sent_by, carrier, content_type, body)
        except DomainError as error:
            await self.audit.audit(sent_by, METHOD, error.code.value, targets, str(error))
            raise
        except UpstreamFailure as error:
            await self.audit.audit(sent_by, METHOD, error.code, targets, error.details)
            if error.code in RETRYABLE:
                # the carrier pushes again (SF up to five times, Kuaidi100 three); the poll catches the rest
                raise Unavailable("tracking is not taken right now; push again") from None
            raise
        touched = [reply.quarantine_id] if reply.quarantine_id else []
        await self.audit.audit(sent_by, METHOD, "OK", [*targets, *touched], reply.detail)
        return reply
