"""Refunds at the order's own payment provider, idempotent on the ticket: every attempt of a refund sends
the same number, so a retry after a timeout refunds once. The result comes by the provider's
notification (`report_refund`) or by asking it (`RefundRunner`, for refunds still PROCESSING); a refund
the provider CLOSED or found ABNORMAL is shown and alerted, never sent again as new money."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from services.aftersales.domain.events import RefundFailure
from services.aftersales.domain.lifecycle import TicketStatus
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.common import Policy, Scope, save
from services.aftersales.handlers.ports import ProviderAnswer, Providers, RefundJob, UnitOfWork
from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import InvalidArgument, NotFound

log = logging.getLogger(__name__)
# a provider's answer waiting to be written: the job, the answer, the trace it was asked in
Answered = tuple[RefundJob, ProviderAnswer, str]
S = TicketStatus
SETTLED = frozenset({"SUCCESS", "CLOSED", "ABNORMAL", "REFUSED"})
REPORTED = frozenset({"SUCCESS", "CLOSED", "ABNORMAL", "PROCESSING"})


async def settle(
    uow: UnitOfWork, policy: Policy, ticket: Ticket, refund_no: str, answer: ProviderAnswer
) -> bool:
    """Apply a provider's final word on one refund attempt to its ticket (inside `uow`); False when it
    is old news (a duplicate or late notification)."""
    now = uow.clock.now()
    if refund_no != ticket.refund_no:
        return False  # an earlier attempt's late word: that attempt is already settled
    if answer.status == "SUCCESS":
        changed = ticket.refund_succeeded(refund_no, answer.provider_refund_id, now)
        if changed:
            ticket.close("aftersales", now, "refunded")
    else:
        failure = RefundFailure.ABNORMAL if answer.status == "ABNORMAL" else RefundFailure.CLOSED
        if ticket.status is S.REFUNDED:
            log.error(
                "provider says %s for refund %s already refunded: kept refunded", answer.status, refund_no
            )
            return False
        changed = ticket.refund_failed(refund_no, failure, answer.detail or answer.status.lower(), now)
        if changed and failure is RefundFailure.CLOSED:
            assert ticket.voucher is not None
            await uow.claims.release(ticket.order_id, ticket.voucher)  # no money moved: the units are free
    await uow.refunds.settled(refund_no, answer.status, answer.provider_refund_id, now)
    if changed:
        await save(uow, ticket, policy)
    return changed


async def report_refund(
    uow: UnitOfWork, policy: Policy, refund_no: str, status: str, provider_refund_id: str, scope: Scope
) -> tuple[Ticket, bool]:
    """A provider's refund notification (verified by the gateway); returns the ticket and whether the
    notification was news."""
    number = refund_no.strip()
    if not number:
        raise InvalidArgument("out_refund_no", "is required")
    state = status.strip().upper()
    if state not in REPORTED:
        raise InvalidArgument("status", f"one of {', '.join(sorted(REPORTED))}")
    async with uow:
        found = await uow.tickets.by_refund_no(number)
        if found is None or scope.hides(found):
            raise NotFound(f"refund {number[:64]} not found")
        await uow.tickets.lock_order(found.order_id)
        ticket = await uow.tickets.get(found.ticket_id, lock=True)
        assert ticket is not None
        if state == "PROCESSING":
            if number != ticket.refund_no:  # an earlier attempt's news: that attempt is settled
                return ticket, False
            await uow.refunds.answered(
                number, "PROCESSING", provider_refund_id, uow.clock.now() + policy.query_every, ""
            )
            await uow.commit()
            return ticket, False
        news = await settle(uow, policy, ticket, number, ProviderAnswer(state, provider_refund_id))
        await uow.commit()
    return ticket, news


class RefundRunner:
    """Sends due refunds to their providers and asks after those still PROCESSING, outside any
    transaction; records each answer in its own."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        providers: Providers,
        policy: Policy,
        batch: int = 100,
        concurrency: int = 32,
    ) -> None:
        self.new_uow = new_uow
        self.providers = providers
        self.policy = policy
        self.batch = batch
        # calls in flight to the providers at once (each waits for the provider's answer)
        self.limit = asyncio.Semaphore(concurrency)
        # set when a refund was queued: the runner looks at once instead of at its next round
        self.wake = asyncio.Event()
        # answers that come while others are being written are written together (a group commit)
        self._records: Batcher[Answered, bool] = Batcher(
            self._record_together, linger=0, max_batch=max(1, min(batch, 500)), in_flight=1
        )

    @property
    def answer_batches(self) -> int:
        """How many transactions wrote providers' answers together (for the tests and the benchmarks)."""
        return self._records.batches

    async def run_due(self) -> int:
        """Send or ask after every refund due now, many at once; how many were taken."""
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            jobs = await uow.refunds.claim_due(now, now + self.policy.lease, self.batch)
            await uow.commit()
        await asyncio.gather(*(self._one(job) for job in jobs))
        return len(jobs)

    async def _one(self, job: RefundJob) -> None:
        async with self.limit:
            answer = await self._ask(job)
        try:
            if not await self._records.submit((job, answer, tracing.current_traceparent())):
                await self.record(job, answer)
        except Exception:
            log.exception("refund %s: the answer %s was not recorded", job.refund_no, answer.status)

    async def run(self, stop: asyncio.Event, every_seconds: float) -> None:
        """Until `stop`: take due refunds when woken (a refund queued) or every `every_seconds`."""
        while not stop.is_set():
            self.wake.clear()
            try:
                while await self.run_due() >= self.batch and not stop.is_set():
                    pass
            except Exception:
                log.exception("refund round failed; trying again")
            waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=every_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()

    async def _ask(self, job: RefundJob) -> ProviderAnswer:
        try:
            if job.status == "PROCESSING":
                return await self.providers.query(job)
            return await self.providers.refund(job, "after-sales refund")
        except Exception as failure:
            log.warning("refund %s at %s: %s; asked again later", job.refund_no, job.provider, failure)
            return ProviderAnswer("SENDING", detail=str(failure)[:500], retry=True)

    async def record(self, job: RefundJob, answer: ProviderAnswer) -> None:
        """Write one provider's answer in its own transaction."""
        uow = self.new_uow()
        async with uow:
            ticket = None
            if _settles(answer):
                await uow.tickets.lock_order(job.order_id)
                ticket = await uow.tickets.get(job.ticket_id, lock=True)
            await self._write(uow, job, answer, ticket)
            await uow.commit()

    async def _record_together(self, items: list[Answered]) -> list[bool]:
        """Answers that came while others were being written, in one transaction: the settling refunds'
        orders locked in one order and their tickets read at once, each answer written in its job's
        trace. Should one fail, the transaction is rolled back and each is answered False: its caller
        writes it alone (`record`), outside the batcher."""
        settling = [job for job, answer, _ in items if _settles(answer)]
        orders = [job.order_id for job in settling]
        numbers = [job.refund_no for job, _, _ in items]
        if len(items) > 1 and len(set(orders)) == len(orders) and len(set(numbers)) == len(numbers):
            try:
                uow = self.new_uow()
                async with uow:
                    await uow.tickets.lock_orders(orders)
                    tickets = await uow.tickets.get_many([job.ticket_id for job in settling], lock=True)
                    for job, answer, traceparent in items:
                        with tracing.attached(traceparent):
                            await self._write(uow, job, answer, tickets.get(job.ticket_id))
                    await uow.commit()
                return [True] * len(items)
            except Exception as error:
                log.info("%d refund answers are written one by one: %r", len(items), error)
        return [False] * len(items)

    async def _write(
        self, uow: UnitOfWork, job: RefundJob, answer: ProviderAnswer, ticket: Ticket | None
    ) -> None:
        """The answer on the refund's row (and, settled, on its ticket: locked by the caller)."""
        now = uow.clock.now()
        if answer.retry:
            delay = self.policy.retry_delay(job.attempts)
            await uow.refunds.answered(job.refund_no, "SENDING", "", now + delay, answer.detail)
        elif answer.status == "PROCESSING":
            await uow.refunds.answered(
                job.refund_no, "PROCESSING", answer.provider_refund_id, now + self.policy.query_every, ""
            )
        elif ticket is None:
            log.error("refund %s has no ticket %s", job.refund_no, job.ticket_id)
        else:
            await settle(uow, self.policy, ticket, job.refund_no, answer)


def _settles(answer: ProviderAnswer) -> bool:
    """Whether the answer is the provider's last word (the ticket moves), not a retry or PROCESSING."""
    return not answer.retry and answer.status != "PROCESSING"


MAX_LEDGER_PAGE = 1000


async def refund_ledger(
    uow: UnitOfWork, since: datetime | None, until: datetime | None, size: int, token: str
) -> tuple[list[dict[str, object]], str]:
    """The finance ledger of refunds (who, when, each bucket, the provider's reference), newest first."""
    if size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if since is not None and until is not None and until < since:
        raise InvalidArgument("until", "is before since")
    async with uow:
        try:
            return await uow.refunds.ledger(since, until, min(size or 100, MAX_LEDGER_PAGE), token)
        except ValueError:
            raise InvalidArgument("page_token", "is not a token this service gave") from None


def ledger_csv_header() -> list[str]:
    return [
        "ticket_id",
        "order_id",
        "customer_id",
        "provider",
        "out_refund_no",
        "provider_refund_id",
        "status",
        "currency",
        "cash",
        "goods",
        "promotion",
        "coupon",
        "points",
        "shipping",
        "approved_by",
        "requested_at",
        "settled_at",
    ]
