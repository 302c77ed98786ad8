"""The gateway's calls to orders: whether orders shows a scoped caller an order, and the calls the
gateway's own use cases make (handing over uploads, forwarding webhooks, the audited reveal); and to
logistics: the carriers' verified tracking pushes; and to after-sales: the providers' verified refund
notifications.

Every call carries an assertion of the caller the gateway signs for the called service
(`Gate.upstream_metadata`), so its own row scope applies to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from oms.aftersales.v1 import aftersales_pb2, aftersales_pb2_grpc
from oms.common.v1 import common_pb2
from oms.gateway.v1 import gateway_pb2
from oms.logistics.v1 import logistics_pb2, logistics_pb2_grpc
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.gateway import mappers
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.principal import Caller, is_scoped
from services.gateway.domain.tracking_pushes import PushReply
from services.gateway.domain.uploads import Target
from services.gateway.domain.webhooks import Forwarded
from services.gateway.gate import Gate
from services.gateway.provider_notifications import RefundNotice
from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import NotFound
from services.kit.status import DETAILS_KEY, code_of, field_violations

ORDERS_AUDIENCE = "orders"
LOGISTICS_AUDIENCE = "logistics"
AFTERSALES_AUDIENCE = "aftersales"
# IngestOrders takes at most this many items per call
BATCH = 500
CALL_TIMEOUT_SECONDS = 10
INGEST_TIMEOUT_SECONDS = 120
STATEMENT_TIMEOUT_SECONDS = 300


class OrderVisibility:
    """Whether orders shows a scoped caller an order: the one test behind every `Reach.ORDER` method.

    Routing's decisions, inventory's reservations and the alert stream answer about an order but do not
    know whose it is (a customer's, an agent's customers', a channel's): orders does. So the gateway asks
    orders, under the caller's own assertion, before it forwards such a call or shows such an alert; an
    order orders would not show is answered exactly like an unknown one. Staff and services are unscoped
    and cost nothing here.
    """

    def __init__(self, gate: Gate, orders: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self.gate = gate
        self.orders = orders_pb2_grpc.OrdersServiceStub(orders)
        self.timeout = timeout_seconds

    async def sees(self, caller: Caller, order_id: str) -> bool:
        """True when the caller may see the order (always, for unscoped callers). Orders' own refusal
        of a malformed id (INVALID_ARGUMENT) and its outages reach the caller as they are."""
        if not is_scoped(caller.principal):
            return True
        if not order_id:
            return False
        try:
            await self.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=order_id),
                metadata=self.gate.upstream_metadata(caller, {}, ORDERS_AUDIENCE),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def check(self, caller: Caller, order_id: str) -> None:
        """NOT_FOUND, worded like orders' own, for an order outside the caller's scope."""
        if not await self.sees(caller, order_id):
            raise NotFound(f"order {order_id} not found")


def upstream_failure(error: grpc.aio.AioRpcError) -> UpstreamFailure:
    """A called service's error as the use cases read it: the code, the message, the field violations."""
    details = next((value for key, value in error.trailing_metadata() or () if key == DETAILS_KEY), b"")
    violations = tuple(field_violations(details)) if isinstance(details, bytes) and details else ()
    return UpstreamFailure(error.code().name, error.details() or "", violations)


class OrdersPeer:
    """Orders as the gateway's use cases call it; its errors come back as `UpstreamFailure`."""

    def __init__(self, gate: Gate, orders: grpc.aio.Channel, visibility: OrderVisibility) -> None:
        self.gate = gate
        self.orders = orders_pb2_grpc.OrdersServiceStub(orders)
        self.visibility = visibility

    def _metadata(self, caller: Caller, reveal: bool = False) -> list[tuple[str, str]]:
        return self.gate.upstream_metadata(caller, {}, ORDERS_AUDIENCE, reveal=reveal)

    async def sees(self, caller: Caller, order_id: str) -> bool:
        try:
            return await self.visibility.sees(caller, order_id)
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None

    async def hand_over(self, caller: Caller, target: str, payload: bytes) -> bytes:
        """A verified upload's payload to its target, as the uploader; the answer, serialised."""
        answer = gateway_pb2.CompleteUploadResponse()
        try:
            if target == Target.PAYMENT_STATEMENT:
                answer.statement.CopyFrom(
                    await self.orders.ImportStatement(
                        mappers.statement_request(payload),
                        metadata=self._metadata(caller),
                        timeout=STATEMENT_TIMEOUT_SECONDS,
                    )
                )
            else:
                answer.orders.CopyFrom(await self._ingest(mappers.ingest_items(target, payload), caller))
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return answer.SerializeToString()

    async def _ingest(
        self, items: list[orders_pb2.IngestItem], caller: Caller
    ) -> orders_pb2.IngestOrdersResponse:
        metadata = self._metadata(caller)
        results = orders_pb2.IngestOrdersResponse()
        for start in range(0, len(items), BATCH):
            reply = await self.orders.IngestOrders(
                orders_pb2.IngestOrdersRequest(items=items[start : start + BATCH]),
                metadata=metadata,
                timeout=INGEST_TIMEOUT_SECONDS,
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

    async def report_payment(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        report = mappers.payment_report(sender, body)
        try:
            reply = await self.orders.ReportPayment(
                report, metadata=self._metadata(caller), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return Forwarded(str(reply.payment.payment_id), [reply.payment.order_id])

    async def report_carrier(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        report = mappers.carrier_report(sender, body)
        try:
            reply = await self.orders.ReportSourceStatus(
                report, metadata=self._metadata(caller), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return Forwarded(str(reply.order.order_id), [reply.order.channel_order_id])

    async def ingest_channel_order(self, caller: Caller, sender: str, body: bytes) -> Forwarded:
        request = mappers.channel_order_request(sender, body)
        try:
            reply = await self.orders.IngestChannelOrder(
                request, metadata=self._metadata(caller), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return Forwarded(str(reply.order.order_id), [reply.order.channel_order_id])

    async def reveal(self, caller: Caller, order_id: str) -> orders_pb2.Order:
        """The order unmasked (the assertion says so); orders decides whether the caller sees it."""
        try:
            reply = await self.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=order_id),
                metadata=self._metadata(caller, reveal=True),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return reply.order


class AftersalesPeer:
    """After-sales as the gateway's use cases call it; its errors come back as `UpstreamFailure`."""

    def __init__(self, gate: Gate, aftersales: grpc.aio.Channel) -> None:
        self.gate = gate
        self.aftersales = aftersales_pb2_grpc.AftersalesServiceStub(aftersales)

    async def report_refund(self, caller: Caller, provider: str, notice: RefundNotice) -> None:
        request = aftersales_pb2.ReportRefundRequest(
            provider=provider,
            out_refund_no=notice.refund_no,
            provider_refund_id=notice.provider_refund_id,
            status=notice.status,
            amount=common_pb2.Money(currency_code="CNY", amount_minor=notice.amount),
        )
        try:
            await self.aftersales.ReportRefund(
                request,
                metadata=self.gate.upstream_metadata(caller, {}, AFTERSALES_AUDIENCE),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None


class LogisticsPeer:
    """Logistics as the gateway's use cases call it; its errors come back as `UpstreamFailure`.

    Pushes from the same sender that arrive together go to logistics in one `ReportTrackingBatch`
    call (`kit.batching`, a group commit: at most `in_flight` calls at once per sender, what arrives
    meanwhile goes in the next), each answered for itself. A logistics that does not know the batch
    call (an older version: UNIMPLEMENTED) is called push by push from then on."""

    def __init__(
        self, gate: Gate, logistics: grpc.aio.Channel, *, in_flight: int = 2, max_batch: int = 64
    ) -> None:
        self.gate = gate
        self.logistics = logistics_pb2_grpc.LogisticsServiceStub(logistics)
        self.in_flight = in_flight
        self.max_batch = max_batch
        self.batched = True
        self._senders: dict[str, Batcher[_Push, PushReply]] = {}

    @property
    def batches(self) -> int:
        """How many batch calls were made (for the tests and the benchmark)."""
        return sum(batcher.batches for batcher in self._senders.values())

    async def report_tracking(
        self, caller: Caller, carrier: str, content_type: str, body: bytes
    ) -> PushReply:
        """A verified push as it arrived; logistics reads the carrier's format and says what to answer."""
        request = logistics_pb2.ReportTrackingRequest(carrier=carrier, content_type=content_type, body=body)
        if not self.batched:
            return await self._one(caller, request)
        sender = caller.principal.subject
        batcher = self._senders.get(sender)
        if batcher is None:
            batcher = Batcher(self._together, linger=0, max_batch=self.max_batch, in_flight=self.in_flight)
            self._senders[sender] = batcher
        return await batcher.submit(_Push(caller, request, tracing.current_traceparent()))

    async def _one(self, caller: Caller, request: logistics_pb2.ReportTrackingRequest) -> PushReply:
        try:
            reply = await self.logistics.ReportTracking(
                request,
                metadata=self.gate.upstream_metadata(caller, {}, LOGISTICS_AUDIENCE),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise upstream_failure(error) from None
        return _push_reply(reply)

    async def _together(self, pushes: list[_Push]) -> list[PushReply | BaseException]:
        """One call for pushes of one sender (the batcher is per sender), so one assertion serves all."""
        if not self.batched:
            return list(
                await asyncio.gather(
                    *(self._one(push.caller, push.request) for push in pushes), return_exceptions=True
                )
            )
        try:
            reply = await self.logistics.ReportTrackingBatch(
                logistics_pb2.ReportTrackingBatchRequest(
                    pushes=[push.request for push in pushes],
                    traceparents=[push.traceparent for push in pushes],
                ),
                metadata=self.gate.upstream_metadata(pushes[0].caller, {}, LOGISTICS_AUDIENCE),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.UNIMPLEMENTED:
                raise upstream_failure(error) from None
            self.batched = False
            return await self._together(pushes)
        return [
            _push_reply(outcome.taken)
            if outcome.WhichOneof("outcome") == "taken"
            else _item_failure(outcome.error)
            for outcome in reply.outcomes
        ]


@dataclass(frozen=True)
class _Push:
    caller: Caller
    request: logistics_pb2.ReportTrackingRequest
    traceparent: str


def _push_reply(reply: logistics_pb2.ReportTrackingResponse) -> PushReply:
    return PushReply(reply.reply.content_type, reply.reply.data, reply.nodes_recorded, reply.quarantine_id)


def _item_failure(error: common_pb2.ItemError) -> UpstreamFailure:
    """One push a batch call refused, as its single call would have failed."""
    return UpstreamFailure(
        code_of(error.code).name,
        error.message,
        tuple((violation.field, violation.description) for violation in error.violations),
    )
