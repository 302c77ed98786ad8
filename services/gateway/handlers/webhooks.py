"""Senders' webhooks (payment providers, carriers, channels): verified, handled once, audited.

The first delivery of a body claims its receipt in one INSERT and is forwarded to orders as its sender
(the role of its kind, scoped to its own rows); every other delivery, concurrent or later, waits for
that first answer and gets it with `duplicate: true`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import Caller
from services.gateway.domain.tracking_pushes import CARRIERS as OWN_FORMAT_CARRIERS
from services.gateway.domain.webhooks import (
    FORWARDED,
    KINDS,
    Forwarded,
    WebhookError,
    WebhookResult,
    may_forward,
    payload_targets,
    sender_principal,
    signed,
)
from services.gateway.handlers.ports import AuditLog, Orders, UnitOfWork
from services.kit.errors import DomainError, InvalidArgument, PermissionDenied, Unauthenticated, Unavailable

METHODS = {kind: f"/{GATEWAY}/Receive{kind.capitalize()}Webhook" for kind in KINDS}
# a duplicate delivery waits this long for the first one's answer (its call to orders has a 10 s deadline)
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05
# a claim still unanswered after this long belongs to a delivery that died mid-way
CLAIM_SECONDS = 30.0


class Webhooks:
    def __init__(
        self,
        secrets: Mapping[str, bytes],
        window_seconds: int,
        new_uow: Callable[[], UnitOfWork],
        orders: Orders,
        audit: AuditLog,
        encode: Callable[[WebhookResult], bytes],
        decode: Callable[[bytes], WebhookResult],
        wall: Callable[[], float],
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.secrets = secrets
        self.window = window_seconds
        self.new_uow = new_uow
        self.orders = orders
        self.audit = audit
        self.encode = encode
        self.decode = decode
        self.wall = wall
        self.monotonic = monotonic
        self.sleep = sleep

    async def receive(
        self, kind: str, sender: str, body: bytes, timestamp: str, signature: str, caller: Caller
    ) -> WebhookResult:
        """Verify, handle once, audit. The audit record names the sender and the ids the notification
        and its answer touch (order, channel order, transaction, waybill), whatever the outcome."""
        sender = sender.strip().lower()
        if not sender or len(sender) > 32:
            raise InvalidArgument("sender", "is required (at most 32 characters)")
        if kind == "carrier" and sender in OWN_FORMAT_CARRIERS:
            # their real pushes are taken in their own formats; an HMAC secret for them signs nothing
            raise InvalidArgument(
                "sender", f"{sender} pushes tracking in its own format to POST /v1/webhooks/tracking/{sender}"
            )
        principal = sender_principal(kind, sender)
        sent_by = Caller(principal, caller.source_ip, caller.request_id)
        method = METHODS[kind]
        targets = payload_targets(kind, body)
        try:
            # a forged notification keeps its own record (not a counted one): it names the order and
            # transaction it tried to touch; the per-address rate limit bounds how many there can be
            # (a secret is bound to its kind: a carrier's or a channel's never signs a payment)
            secret = self.secrets.get(f"{kind}/{sender}")
            if not signed(secret, timestamp, signature, body, self.wall(), self.window):
                raise Unauthenticated("authentication required")
            if not may_forward(kind, principal):
                raise PermissionDenied(f"{kind} webhooks may not call {FORWARDED[kind]}")
            result, touched = await self._handle_once(kind, sender, body, sent_by)
        except DomainError as error:
            await self.audit.audit(sent_by, method, error.code.value, targets, str(error))
            raise
        except UpstreamFailure as error:
            await self.audit.audit(sent_by, method, error.code, targets, error.details)
            raise
        detail = "duplicate: the first delivery's answer" if result.duplicate else ""
        await self.audit.audit(sent_by, method, "OK", [*targets, *touched], detail)
        return result

    def _forward(self, kind: str, sender: str, body: bytes, as_caller: Caller) -> Awaitable[Forwarded]:
        if kind == "payment":
            return self.orders.report_payment(as_caller, sender, body)
        if kind == "carrier":
            return self.orders.report_carrier(as_caller, sender, body)
        return self.orders.ingest_channel_order(as_caller, sender, body)

    async def _handle_once(
        self, kind: str, sender: str, body: bytes, sent_by: Caller
    ) -> tuple[WebhookResult, list[str]]:
        digest = hashlib.sha256(body).hexdigest()
        give_up = self.monotonic() + WAIT_SECONDS
        while not await self._claim(kind, sender, digest):
            uow = self.new_uow()
            async with uow:
                first = await uow.receipts.first(kind, sender, digest)
            if first is None:
                continue  # the first delivery failed and let its claim go: this one is handled afresh
            if first:  # answered (a claim still being handled is PENDING: empty)
                result = replace(self.decode(first), duplicate=True)
                return result, [result.reference]
            if self.monotonic() > give_up:
                raise Unavailable("the first delivery of this notification is still being handled; retry")
            await self.sleep(POLL_SECONDS)
        try:
            forwarded = await self._forward(kind, sender, body, sent_by)
        except WebhookError as error:
            await self._release(kind, sender, digest)
            raise InvalidArgument(error.field, error.problem) from None
        except UpstreamFailure as error:
            await self._release(kind, sender, digest)
            if error.code in ("INVALID_ARGUMENT", "NOT_FOUND"):
                field, problem = error.first_violation()
                raise InvalidArgument(field or "body", problem or "refused") from None
            raise
        except BaseException:
            await asyncio.shield(self._release(kind, sender, digest))
            raise
        result = WebhookResult(accepted=True, message="accepted", reference=forwarded.reference)
        uow = self.new_uow()
        async with uow:
            await uow.receipts.answer(kind, sender, digest, self.encode(result))
            await uow.commit()
        return result, [forwarded.reference, *forwarded.touched]

    async def _claim(self, kind: str, sender: str, digest: str) -> bool:
        now = datetime.fromtimestamp(self.wall(), UTC)
        uow = self.new_uow()
        async with uow:
            claimed = await uow.receipts.claim(kind, sender, digest, now) or await uow.receipts.take_over(
                kind, sender, digest, now, now - timedelta(seconds=CLAIM_SECONDS)
            )
            await uow.commit()
        return claimed

    async def _release(self, kind: str, sender: str, digest: str) -> None:
        uow = self.new_uow()
        async with uow:
            await uow.receipts.release(kind, sender, digest)
            await uow.commit()
