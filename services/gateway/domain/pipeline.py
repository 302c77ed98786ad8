"""The event pipeline: each service's outbox as the service last reported it (events committed and not yet
published), and each domain's stream with how far behind each consumer is, as JetStream counts it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ConsumerLag:
    name: str
    # in the stream and not yet delivered to the consumer
    pending: int
    # delivered and not yet acknowledged
    ack_pending: int
    redelivered: int
    last_active: datetime | None


@dataclass(frozen=True)
class StreamLag:
    stream: str
    messages: int
    last_seq: int
    consumers: list[ConsumerLag] = field(default_factory=list)


@dataclass(frozen=True)
class OutboxState:
    service: str
    unpublished: int
    # the count stopped at its cap: at least this many
    capped: bool
    oldest_age_seconds: float
    reported_at: datetime


@dataclass(frozen=True)
class Pipeline:
    outboxes: list[OutboxState]
    streams: list[StreamLag]
