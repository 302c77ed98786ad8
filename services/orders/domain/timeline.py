"""The order timeline: every domain event becomes one entry saying what happened and who did it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.orders.domain import model
from services.orders.domain.lifecycle import OrderStatus


class ActorType(StrEnum):
    USER = "user"
    SERVICE = "service"
    CHANNEL = "channel"


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: str

    @classmethod
    def service(cls, name: str = "orders") -> Actor:
        return cls(ActorType.SERVICE, name)


@dataclass(frozen=True)
class Entry:
    kind: str
    actor: Actor
    source: str
    detail: str
    from_status: OrderStatus | None = None
    to_status: OrderStatus | None = None


def entries_for(events: list[object], actor: Actor, source: str) -> list[Entry]:
    entries = []
    for event in events:
        entry = _entry(event, actor, source)
        if entry is not None:
            entries.append(entry)
    return entries


def _entry(event: object, actor: Actor, source: str) -> Entry | None:
    match event:
        case model.OrderCreated(status=status):
            return Entry("created", actor, source, f"order received as {status.value}", None, status)
        case model.OrderUpdated(fields=fields):
            return Entry("updated", actor, source, "changed: " + ", ".join(fields))
        case model.StatusChanged(previous=previous, status=status, reason=reason):
            return Entry("status_changed", actor, source, reason, previous, status)
        case model.OrderPaid(amount_minor=amount, transaction_id=transaction, paid_at=paid_at):
            return Entry("paid", actor, source, f"{amount} paid at {paid_at.isoformat()} ({transaction})")
        case model.OrderAllocated(warehouses=warehouses):
            return Entry("allocated", actor, source, "stock committed at " + ", ".join(warehouses))
        case model.OrderCancelled(reason=reason, was_paid=was_paid):
            return Entry("cancelled", actor, source, reason + (" (paid: refund due)" if was_paid else ""))
        case model.OrderHeld(reason=reason):
            return Entry("held", actor, source, reason)
        case model.OrderReleased(status=status):
            return Entry("released", actor, source, f"resumed as {status.value}")
        case model.OrderFrozen(reason=reason, attempted=attempted):
            attempt = f" (attempted {attempted.value})" if attempted else ""
            return Entry("exception", actor, source, reason + attempt, None, attempted)
        case model.AlertRaised(kind=kind, severity=severity, message=message):
            return Entry("alert", actor, source, f"[{severity}] {kind}: {message}")
        case model.SlaReached(stage=stage, category=category, level=level, deadline=deadline, notify=notify):
            colour = "red" if level >= 2 else "amber"
            to = (
                f", escalated to {notify}"
                if level >= 2 and notify
                else (f", {notify} told" if notify else "")
            )
            return Entry(f"sla_{colour}", actor, source, f"{stage}/{category} due {deadline.isoformat()}{to}")
        case model.RiskHeld(version=version, score=score, hits=hits):
            rules = ", ".join(hits) or "the score"
            return Entry(
                "risk_held", actor, source, f"held by risk rule set v{version}: {rules} (score {score})"
            )
        case model.ShipmentNoted(kind=kind, detail=detail) | model.TicketNoted(kind=kind, detail=detail):
            return Entry(kind, actor, source, detail)
    return None
