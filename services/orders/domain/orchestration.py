"""The process manager's rule: given an order and where its stock stands, what happens next.

Every step is idempotent at the peer (routing plans and inventory reservations are keyed by the
order id, logistics' shipments by the order and the warehouse), so a step interrupted by a crash,
or whose answer was lost in a timeout, is simply run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Order
from services.orders.domain.sla import SlaState

# allocated, or already picking when a pick event overtook the ship step's answer: logistics' list of
# the order's shipments is still wanted (the order moves past PICKING only once it knows them all)
SHIPPABLE = frozenset({OrderStatus.ALLOCATED, OrderStatus.PICKING})


class StockState(StrEnum):
    NONE = "NONE"  # nothing held at inventory
    RESERVED = "RESERVED"  # held for the order, not yet deducted
    COMMITTED = "COMMITTED"  # deducted at payment
    RELEASED = "RELEASED"  # given back (expired, cancelled, restocked)


class Step(StrEnum):
    RESERVE = "reserve"  # plan with routing, reserve at the planned warehouses (and commit if paid)
    COMMIT = "commit"  # payment arrived for reserved stock
    # a cancelled order gives its stock back, and has logistics cancel its shipments still in the
    # warehouse (when it shipped through logistics)
    RELEASE = "release"
    SHIP = "ship"  # an allocated order has logistics open its shipments, one per planned parcel


def next_step(order: Order, stock: StockState) -> Step | None:
    status = order.status
    if status is OrderStatus.CANCELLED:
        held = stock in (StockState.RESERVED, StockState.COMMITTED)
        return Step.RELEASE if held or order.shipments_in_warehouse else None
    if status is OrderStatus.PENDING_PAYMENT:
        return Step.RESERVE if stock is StockState.NONE else None
    if status is OrderStatus.PAID:
        return Step.COMMIT if stock is StockState.RESERVED else Step.RESERVE
    if status in SHIPPABLE and order.shipping_plan is not None and not order.shipments_listed:
        return Step.SHIP
    return None


@dataclass
class Stored:
    """An order with the process manager's bookkeeping around it, as the store keeps it."""

    order: Order
    stock_state: str = StockState.NONE.value
    step: str | None = None  # the step due; None when there is none or it is dead-lettered
    step_due_at: datetime | None = None
    step_attempts: int = 0
    step_error: str = ""
    step_dead: bool = False
    step_failed_at: datetime | None = None
    step_pauses: int = 0
    step_paused_since: datetime | None = None
    step_waiting_for: str | None = None  # the peer a paused step sleeps on
    traceparent: str = ""  # the ingest's trace, continued by every step
    step_traceparent: str = ""  # the trace that made the current step due (a payment, a release, …)
    # the routing decision whose reservation inventory refused on the last attempt (its stock went to
    # another order): the next plan asks routing to decide again instead of repeating it; "" otherwise
    refused_decision_id: str = ""
    status_changed_at: datetime | None = None
    sla: SlaState = field(default_factory=SlaState)  # the order's SLA timer (domain/sla.py)

    def schedule(self, step: str | None, now: datetime) -> None:
        """Make `step` the order's next step, due now, with fresh attempts (None: no step)."""
        self.step = step
        self.step_due_at = now if step else None
        self.step_attempts = 0
        self.step_error = ""
        self.step_dead = False
        self.step_pauses = 0
        self.step_paused_since = None
        self.step_waiting_for = None


@dataclass(frozen=True)
class DeadSteps:
    """Which dead-lettered steps a bulk replay takes: error text and failure time."""

    reason_contains: str = ""
    failed_from: datetime | None = None
    failed_to: datetime | None = None
