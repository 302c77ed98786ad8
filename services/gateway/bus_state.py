"""The event pipeline's state for the console's dashboard: each service's outbox as its last report said
(core NATS `<prefix>.ops.outbox`, every few seconds from each service's one reporting replica), and from
JetStream the platform's streams and their durable consumers: what each has still to take, and what it
took but has not acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import nats.errors

from services.gateway.domain.pipeline import ConsumerLag, OutboxState, Pipeline, StreamLag
from services.kit.bus import stream_name
from services.kit.errors import Unavailable

log = logging.getLogger(__name__)
# services are few; a flood of made-up names must not grow the table without bound
MAX_SERVICES = 64


class BusState:
    def __init__(self, js: Any, subject_prefix: str, timeout: float = 2.0) -> None:
        self.js = js
        self.stream_prefix = stream_name(subject_prefix, "")
        self.timeout = timeout
        self.outboxes: dict[str, OutboxState] = {}

    async def take_report(self, msg: Any) -> None:
        """A service's outbox report (services.kit.outbox.outbox_report); a malformed one is dropped."""
        try:
            report = json.loads(msg.data)
            state = OutboxState(
                service=str(report["service"])[:64],
                unpublished=int(report["unpublished"]),
                capped=bool(report.get("capped", False)),
                oldest_age_seconds=float(report["oldest_age_seconds"]),
                reported_at=datetime.fromisoformat(report["at"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            log.warning("dropped a malformed outbox report: %r", error)
            return
        if state.service in self.outboxes or len(self.outboxes) < MAX_SERVICES:
            self.outboxes[state.service] = state

    async def read(self) -> Pipeline:
        outboxes = [self.outboxes[name] for name in sorted(self.outboxes)]
        try:
            return Pipeline(outboxes, await asyncio.wait_for(self._read(), self.timeout))
        except (TimeoutError, OSError, nats.errors.Error) as error:
            raise Unavailable(f"the event bus did not answer ({type(error).__name__}); retry") from None

    async def _read(self) -> list[StreamLag]:
        streams = [s for s in await self.js.streams_info() if s.config.name.startswith(self.stream_prefix)]
        found = []
        for stream in sorted(streams, key=lambda s: s.config.name):
            consumers = await self.js.consumers_info(stream.config.name)
            found.append(
                StreamLag(
                    stream=stream.config.name,
                    messages=stream.state.messages,
                    last_seq=stream.state.last_seq,
                    consumers=[
                        ConsumerLag(
                            name=c.name,
                            pending=c.num_pending or 0,
                            ack_pending=c.num_ack_pending or 0,
                            redelivered=c.num_redelivered or 0,
                            last_active=c.delivered.last_active if c.delivered else None,
                        )
                        for c in sorted(consumers, key=lambda c: c.name)
                    ],
                )
            )
        return found
