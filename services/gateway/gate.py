"""The gate every public call passes: authenticate, authorise, rate-limit, and audit.

The caller's own `x-oms-*` metadata (an `x-oms-assertion` included) is never forwarded: the gateway
tells the owning service who is calling, their roles and their row scope in an assertion it signs
for that one call, and the services trust nothing else.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason, FailedAttempts
from services.gateway.domain.audit import AuditRecord, attempts_record, call_record
from services.gateway.domain.policy import Klass, Rule, direct_read, refusal, rule_for
from services.gateway.domain.principal import Caller, anonymous, scope_of
from services.gateway.limits import RateLimiter, limit_for
from services.gateway.store.uow import GatewayUnitOfWork
from services.kit import identity, tracing
from services.kit.batching import Batcher
from services.kit.grpc_server import TRACE_ID_HEADER
from services.kit.ids import new_id

__all__ = ["Caller", "Gate", "Refused", "asserted", "client_address", "trailing"]

log = logging.getLogger(__name__)

FORWARDED_METADATA = frozenset({"x-request-id", "idempotency-key", "grpc-accept-encoding"})
TARGET_FIELDS = ("channel_order_id", "merchant_order_no", "transaction_id")
# set by Envoy's route config from the downstream address it computed (deploy/envoy/envoy.yaml)
CLIENT_ADDRESS_HEADER = "x-oms-client-address"
# audit records are written as a group commit: a record that finds a free writer goes at once, the
# ones that arrive while these are busy go together in the next transaction
AUDIT_WRITERS = 4
AUDIT_BATCH = 200


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Gate:
    def __init__(
        self,
        jwt: auth.JwtSettings,
        api_keys: Mapping[str, auth.ApiKey],
        signature_window_seconds: int,
        redis: aioredis.Redis,
        limiter: RateLimiter,
        limits: Mapping[str, Any],
        new_uow: Callable[[], GatewayUnitOfWork],
        signer: identity.Signer,
        wall: Callable[[], float] = time.time,
        failed_attempts: FailedAttempts | None = None,
    ) -> None:
        self.jwt = jwt
        self.tokens = auth.VerifiedTokens(jwt)
        self.api_keys = api_keys
        self.window = signature_window_seconds
        self.redis = redis
        self.limiter = limiter
        self.limits = limits
        self.new_uow = new_uow
        self.signer = signer
        self.wall = wall
        self.pool = descriptor_pool.Default()
        self.failed_attempts = FailedAttempts() if failed_attempts is None else failed_attempts
        self._audits: Batcher[AuditRecord, None] = Batcher(
            self._write_audits, linger=0, max_batch=AUDIT_BATCH, in_flight=AUDIT_WRITERS
        )

    # ---- admission ----------------------------------------------------------------------------

    async def admit(
        self, method: str, rule: Rule, metadata: Mapping[str, str], body: bytes, peer: str
    ) -> Caller:
        source_ip = client_address(metadata, peer)
        principal = (
            await self.authenticate(method, metadata, body, source_ip) if not rule.public else anonymous()
        )
        reason = refusal(rule, principal)
        if reason is not None:
            self.failed_attempt_of(principal, source_ip, method, "PERMISSION_DENIED", reason)
            message = (
                "a customer token must name its customer"
                if reason is AttemptReason.CUSTOMER_UNNAMED
                else f"{method} is not allowed for this caller"
            )
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, message)
        # anonymous calls (token exchange, signed webhooks) are limited per source address, so one
        # noisy sender cannot use up everyone's bucket
        await self._limit(method, rule, principal, principal.subject or f"ip:{source_ip}")
        return Caller(principal, source_ip, metadata.get("x-request-id", ""))

    async def admit_direct(self, method: str, metadata: Mapping[str, str]) -> str | None:
        """For Envoy's authoriser (`edge_authz`): the assertion a direct read carries to its service, or
        None when the call must go through the proxy instead. Only a bearer token that verifies, whose
        roles may call the method, within its rate limit, goes direct. Nothing is recorded here: given
        the call, the proxy refuses it and counts the attempt exactly as it always has."""
        rule = rule_for(method)
        if rule is None or not direct_read(method):
            return None
        scheme, _, token = metadata.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            principal = self.tokens.verify(token.strip(), self.wall())
        except auth.AuthError:
            return None
        if refusal(rule, principal) is not None:
            return None
        try:
            await self._limit(method, rule, principal, principal.subject)
        except Refused:
            return None
        return self.signer.mint(asserted(principal), identity.audience_of(method))

    async def authenticate(
        self, method: str, metadata: Mapping[str, str], body: bytes, source_ip: str = ""
    ) -> auth.Principal:
        # the reason class of a refusal: which kind of credential failed, never what was sent
        reason = AttemptReason.NO_CREDENTIALS
        try:
            header = metadata.get("authorization", "")
            if header:
                reason = AttemptReason.BEARER_TOKEN
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token:
                    raise auth.AuthError("authorization is not a bearer token")
                return self.tokens.verify(token.strip(), self.wall())
            if "x-oms-key-id" in metadata:
                reason = AttemptReason.API_KEY_SIGNATURE
                return await auth.verify_signature(
                    self.api_keys,
                    metadata.get("x-oms-key-id", ""),
                    metadata.get("x-oms-timestamp", ""),
                    metadata.get("x-oms-nonce", ""),
                    metadata.get("x-oms-signature", ""),
                    method,
                    body,
                    self.wall(),
                    self.window,
                    self._claim_nonce,
                )
            raise auth.AuthError("no credentials")
        except auth.AuthError as error:
            log.info("refused %s from %s: %s", method, source_ip or "?", error)
            self.failed_attempts.add(self.wall(), source_ip, method, "UNAUTHENTICATED", reason)
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "authentication required") from None

    async def _claim_nonce(self, key_id: str, nonce: str, ttl_seconds: int) -> bool:
        """Redis SET NX: the first use of a nonce wins on every replica. Without Redis a replay cannot
        be ruled out, so signed calls are refused (retryable) rather than let through."""
        try:
            claimed = await self.redis.set(
                f"oms:nonce:{key_id}:{nonce}", b"1", nx=True, ex=max(ttl_seconds, 1)
            )
        except Exception:
            log.warning("nonce store unavailable; refusing signed call")
            raise Refused(grpc.StatusCode.UNAVAILABLE, "try again shortly") from None
        return bool(claimed)

    async def _limit(self, method: str, rule: Rule, principal: auth.Principal, subject: str) -> None:
        klass = rule.klass.value
        limit = limit_for(
            self.limits, klass, principal.roles, principal.token_id if principal.kind == "integration" else ""
        )
        costly = rule.mutating and rule.klass in (Klass.WRITE, Klass.UPLOAD)
        decision = await self.limiter.check(f"{subject}:{klass}", limit, self.wall(), costly)
        if decision.unavailable:
            raise Refused(
                grpc.StatusCode.UNAVAILABLE, "rate limiter unavailable; retry", decision.retry_after_seconds
            )
        if not decision.allowed:
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit for {klass} calls reached; retry after {decision.retry_after_seconds:.1f}s",
                decision.retry_after_seconds,
            )

    # ---- failed attempts ------------------------------------------------------------------------

    def failed_attempt(self, caller: Caller, method: str, result: str, reason: str) -> None:
        """A 401 or 403 after admission (a wrong client secret, a refusal upstream), counted for audit."""
        self.failed_attempt_of(caller.principal, caller.source_ip, method, result, reason)

    def failed_attempt_of(
        self, principal: auth.Principal, source_ip: str, method: str, result: str, reason: str
    ) -> None:
        log.info("refused %s from %s: %s (%s)", method, source_ip, result, reason)
        self.failed_attempts.add(
            self.wall(), source_ip, method, result, reason, principal.subject, principal.kind
        )

    async def flush_failed_attempts(self, everything: bool = False) -> int:
        """One audit record per closed window and key, with the count; a failed write keeps the counts
        for the next flush. Returns how many records were written."""
        taken = self.failed_attempts.take_closed(self.wall(), everything)
        if not taken:
            return 0
        window = self.failed_attempts.window_seconds
        try:
            uow = self.new_uow()
            async with uow:
                for key, count in taken:
                    await uow.audit.add(attempts_record(new_id(), key, count, window))
                await uow.commit()
        except BaseException:
            self.failed_attempts.put_back(taken)
            raise
        return len(taken)

    # ---- what the owning service is told -----------------------------------------------------

    def upstream_metadata(
        self, caller: Caller, metadata: Mapping[str, str], audience: str, reveal: bool = False
    ) -> list[tuple[str, str]]:
        """What a forwarded call carries: a few of the caller's headers, a fresh assertion of the
        principal for the `audience` service, and the trace (the proxy's channels have no interceptor)."""
        out = [(key, value) for key, value in metadata.items() if key in FORWARDED_METADATA]
        out.append(
            (identity.ASSERTION_HEADER, self.signer.mint(asserted(caller.principal, reveal), audience))
        )
        return out + tracing.outgoing_metadata()

    # ---- audit ---------------------------------------------------------------------------------

    async def audit(
        self,
        caller: Caller,
        method: str,
        result: str,
        targets: list[str],
        detail: str = "",
    ) -> None:
        """Written before the caller gets its answer; if it cannot be written the call fails. `result`
        is the status code's name (`OK`, `NOT_FOUND`, …). Records of concurrent calls share one
        transaction (a group commit); each caller still waits for its own to be committed."""
        at = datetime.fromtimestamp(self.wall(), UTC)
        record = call_record(
            new_id(), at, caller, method, result, targets, tracing.current_trace_id(), detail
        )
        await self._audits.submit(record)

    async def _write_audits(self, records: list[AuditRecord]) -> list[None]:
        uow = self.new_uow()
        async with uow:
            await uow.audit.add_many(records)
            await uow.commit()
        return [None] * len(records)

    def targets(self, method: str, request: bytes, response: bytes | None) -> list[str]:
        """The ids a call touched: `*_id` fields of the request (and the order id of the answer)."""
        service, _, name = method.lstrip("/").partition("/")
        try:
            descriptor = self.pool.FindMethodByName(f"{service}.{name}")
        except KeyError:
            return []
        found = _ids(_parse(descriptor.input_type, request))
        if response is not None:
            reply = _parse(descriptor.output_type, response)
            order: Any = getattr(reply, "order", None) if reply is not None else None
            if isinstance(order, Message) and "order_id" in order.DESCRIPTOR.fields_by_name:
                found.append(str(getattr(order, "order_id")))  # noqa: B009
        return found


def asserted(principal: auth.Principal, reveal: bool = False) -> identity.Principal:
    """The principal as services are told it, with its scope (`domain.principal.scope_of`)."""
    actor_type = "user" if principal.kind == "user" else ("channel" if principal.channel else "service")
    scope = scope_of(principal)
    return identity.Principal(
        subject=principal.subject,
        actor_type=actor_type,
        roles=principal.roles,
        customer_id=scope.customer_id,
        agent_id=scope.agent_id,
        # already the one form (auth checked and folded every claim); nothing is re-parsed downstream
        channel=scope.channel,
        provider=scope.provider,
        reveal=reveal,
    )


def trailing(retry_after: float = 0.0) -> tuple[tuple[str, str], ...]:
    pairs = [(TRACE_ID_HEADER, tracing.current_trace_id())]
    if retry_after:
        pairs.append(("retry-after", str(max(1, math.ceil(retry_after)))))
    return tuple(pairs)


def _parse(descriptor: Any, data: bytes) -> Message | None:
    try:
        message: Message = message_factory.GetMessageClass(descriptor)()
        message.ParseFromString(data)
        return message
    except (DecodeError, TypeError):
        return None


def _ids(message: Message | None) -> list[str]:
    if message is None:
        return []
    found = []
    for field, value in message.ListFields():
        if isinstance(value, str) and (field.name.endswith("_id") or field.name in TARGET_FIELDS):
            found.append(value)
    return found


def client_address(metadata: Mapping[str, str], peer: str) -> str:
    """The address Envoy computed (`use_remote_address` and its trusted hops) and set, overwriting any
    copy the caller sent; `x-forwarded-for` is the caller's to write and is never read. Without the
    header the call did not come through Envoy (only Envoy may reach the gateway in a deployment), and
    the connection's peer is the caller."""
    given = metadata.get(CLIENT_ADDRESS_HEADER, "").strip()
    if given:
        return given
    # "ipv4:127.0.0.1:54321" / "ipv6:[::1]:54321"
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else peer
