"""Telling an alert record's assignee: the record as an alert through every sink, the assignee's phone
to the personal ones (SMS). An escalation is its own delivery (its own dedupe key per level), saying
who it now goes to."""

from __future__ import annotations

from oms.alerts.v1 import events_pb2
from services.gateway.alerts.dispatch import Dispatcher
from services.gateway.domain.alert_records import AlertRecord
from services.kit.timestamps import timestamp


def alert_of(record: AlertRecord, escalated: bool) -> events_pb2.AlertRaised:
    delivery = f"{record.alert_id}:L{record.level}" if escalated else record.alert_id
    message = record.message
    if escalated:
        message = f"escalated to {record.assigned_to} (level {record.level}, unacknowledged): {message}"
    alert = events_pb2.AlertRaised(
        event_id=delivery,
        kind=record.kind,
        severity=record.severity,  # type: ignore[arg-type]
        source=record.source,
        order_id=record.order_id,
        message=message,
        dedupe_key=delivery,
        customer_id=record.customer_id,
        channel=record.channel,
        roles=record.roles,
    )
    alert.occurred_at.CopyFrom(timestamp(record.last_seen))
    return alert


class RecordNotifier:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def notify(self, record: AlertRecord, escalated: bool) -> bool:
        assignee = record.assignee
        phones = [assignee.phone] if assignee is not None and assignee.phone else []
        return await self.dispatcher.handle(alert_of(record, escalated), phones)
