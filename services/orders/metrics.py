"""Orders' business counters (beside the kit's RPC, outbox and consumer figures): counted by the
servicer and the channel poll where the use cases' results come back, never in the domain."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from services.orders import handlers
from services.orders.domain.payments import PaymentRecord
from services.orders.handlers.channel_health import Polled

INGESTED = Counter(
    "oms_orders_ingested",
    "Channel orders taken in, by channel, outcome (CREATED, UPDATED, UNCHANGED, STALE, REJECTED) and way "
    "(api: a push or a call; poll: orders' own channel poll, which counts only the orders it created)",
    ["channel", "outcome", "via"],
)
PAYMENTS = Counter(
    "oms_payment_notifications",
    "Payment notifications reported, by provider and what became of them (APPLIED, PARKED, REJECTED, "
    "RECEIVED); a repeat of a notification already stored is `duplicate`",
    ["provider", "state"],
)


def count_ingested(taken: Iterable[tuple[handlers.Ingested, object]]) -> None:
    """Each result with the item it came from (a payload refused before it was read has no channel of
    its own in the result)."""
    for result, item in taken:
        channel = result.channel or getattr(item, "channel", None)
        INGESTED.labels(channel.value if channel else "UNKNOWN", result.outcome.value, "api").inc()


def count_polled(polled: Iterable[Polled]) -> None:
    for result in polled:
        if result.created:
            INGESTED.labels(result.channel, handlers.Outcome.CREATED.value, "poll").inc(result.created)


def count_payment(record: PaymentRecord, duplicate: bool) -> None:
    state = "duplicate" if duplicate else record.state.value
    PAYMENTS.labels(record.notification.provider, state).inc()
