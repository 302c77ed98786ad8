"""The bus's dead letters: events a JetStream consumer terminated (poison, rejected, or failing past
its deliveries) are kept in the service's `dead_letters` table with an alert, and listed and replayed
on request, so one bad event never stops a consumer and never disappears.

Each service answers `<prefix>.ops.dead_letters.<service>` on core NATS (a queue group: one replica
answers) with a JSON request:

- `{"action": "list", "consumer": "", "replayed": false, "limit": 100}` → `{"dead_letters": [...]}`;
- `{"action": "replay", "ids": [3, 4]}` → `{"replayed": [3], "failed": {"4": "why"}}`: each dead letter
  runs through its consumer's handler exactly as a delivery would (the inbox claim and the handler in
  one transaction, marked replayed in that same transaction), so a replay is processed once, and an
  event another path handled meanwhile is only marked.

`omsctl dead-letters` is the client. The replica that answers reads its own database, which every
replica of the service shares.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.consumer import Envelope, EventConsumer, decode
from services.kit.schema import dead_letters_table

log = logging.getLogger(__name__)

MAX_LIST = 1000
_d = dead_letters_table.c


def requests_subject(prefix: str, service: str) -> str:
    return f"{prefix}.ops.dead_letters.{service}"


async def listed(
    engine: AsyncEngine, consumer: str = "", replayed: bool = False, limit: int = 100
) -> list[dict[str, Any]]:
    """Dead letters, newest first: those not replayed yet (or all, with `replayed`)."""
    query = select(
        _d.id,
        _d.consumer,
        _d.subject,
        _d.event_id,
        _d.event_type,
        _d.error,
        _d.deliveries,
        _d.created_at,
        _d.replayed_at,
    ).order_by(_d.id.desc())
    if consumer:
        query = query.where(_d.consumer == consumer)
    if not replayed:
        query = query.where(_d.replayed_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(query.limit(max(1, min(limit, MAX_LIST))))).all()
    return [
        {
            "id": row.id,
            "consumer": row.consumer,
            "subject": row.subject,
            "event_id": row.event_id,
            "event_type": row.event_type,
            "error": row.error,
            "deliveries": row.deliveries,
            "dead_at": row.created_at.isoformat(),
            "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        }
        for row in rows
    ]


class _NotReplayed(Exception):
    """Rolls the replay's transaction back (the inbox claim with it) and says why."""


async def replay(engine: AsyncEngine, consumers: Mapping[str, EventConsumer], dead_letter_id: int) -> str:
    """Run one dead letter through its consumer's handler; "" when replayed, else why not (and then
    nothing of the attempt is kept)."""
    try:
        envelope = await _replay(engine, consumers, dead_letter_id)
    except _NotReplayed as why:
        return str(why)
    envelope._run_committed()
    return ""


async def _replay(
    engine: AsyncEngine, consumers: Mapping[str, EventConsumer], dead_letter_id: int
) -> Envelope:
    async with engine.begin() as conn:
        row = (
            await conn.execute(select(dead_letters_table).where(_d.id == dead_letter_id).with_for_update())
        ).first()
        if row is None:
            raise _NotReplayed("no such dead letter")
        if row.replayed_at is not None:
            raise _NotReplayed(f"replayed already at {row.replayed_at.isoformat()}")
        consumer = consumers.get(row.consumer)
        if consumer is None:
            raise _NotReplayed(f"consumer {row.consumer} does not run in this service")
        try:
            event = decode(row.event_type, row.payload)
        except Exception as error:  # a poison message stays poison: say so, keep it
            raise _NotReplayed(f"still undecodable: {error!r}"[:500]) from None
        envelope = Envelope(
            event_id=row.event_id, subject=row.subject, event_type=row.event_type, deliveries=row.deliveries
        )
        try:  # handled meanwhile by another delivery: only marked
            await consumer.handle_in(conn, event, envelope)
        except Exception as error:
            raise _NotReplayed(f"the handler failed again: {error!r}"[:500]) from None
        await conn.execute(
            update(dead_letters_table).where(_d.id == dead_letter_id).values(replayed_at=datetime.now(UTC))
        )
    log.info("dead letter %d (%s, event %s) replayed", dead_letter_id, row.consumer, row.event_id)
    return envelope


class DeadLetterDesk:
    """Answers the ops requests for one service's dead letters (see the module's docstring)."""

    def __init__(
        self,
        nc: NatsClient,
        engine: AsyncEngine,
        prefix: str,
        service: str,
        consumers: Callable[[], Mapping[str, EventConsumer]],
    ) -> None:
        self.nc, self.engine, self.prefix, self.service = nc, engine, prefix, service
        self.consumers = consumers

    async def start(self) -> None:
        await self.nc.subscribe(
            requests_subject(self.prefix, self.service), queue=f"{self.service}-dead-letters", cb=self._answer
        )

    async def _answer(self, msg: Msg) -> None:
        try:
            answer = await self.answer(json.loads(msg.data or b"{}"))
        except (ValueError, TypeError) as error:
            answer = {"error": f"not a request: {error}"}
        except Exception as error:  # the database away: the caller is told, the service goes on
            log.exception("a dead-letter request failed")
            answer = {"error": f"could not answer: {error!r}"[:500]}
        if msg.reply:
            await msg.respond(json.dumps(answer).encode())

    async def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise TypeError("the request must be a JSON object")
        action = request.get("action", "list")
        if action == "list":
            return {
                "service": self.service,
                "dead_letters": await listed(
                    self.engine,
                    str(request.get("consumer", "")),
                    bool(request.get("replayed", False)),
                    int(request.get("limit", 100)),
                ),
            }
        if action == "replay":
            ids = request.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise TypeError("`ids` must be a list of dead-letter ids")
            replayed, failed = [], {}
            for dead_letter_id in ids:
                why = await replay(self.engine, self.consumers(), dead_letter_id)
                if why:
                    failed[str(dead_letter_id)] = why
                else:
                    replayed.append(dead_letter_id)
            return {"service": self.service, "replayed": replayed, "failed": failed}
        raise TypeError(f"unknown action {action!r}: list or replay")
