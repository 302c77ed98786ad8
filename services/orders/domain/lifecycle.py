"""The canonical order lifecycle as an explicit transition table (DOMAIN.md §1).

Only the pairs listed here may happen. Anything else is refused by `check`; the handlers then
freeze the order into EXCEPTION, record the attempt and raise an alert.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    ALLOCATED = "ALLOCATED"
    PICKING = "PICKING"
    PACKED = "PACKED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    ON_HOLD = "ON_HOLD"
    EXCEPTION = "EXCEPTION"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.ON_HOLD, S.EXCEPTION}),
    S.PAID: frozenset({S.ALLOCATED, S.CANCELLED, S.ON_HOLD, S.EXCEPTION, S.REFUNDED}),
    S.ALLOCATED: frozenset({S.PICKING, S.CANCELLED, S.ON_HOLD, S.EXCEPTION, S.REFUNDED}),
    S.PICKING: frozenset({S.PACKED, S.ON_HOLD, S.EXCEPTION}),
    S.PACKED: frozenset({S.SHIPPED, S.ON_HOLD, S.EXCEPTION}),
    S.SHIPPED: frozenset({S.DELIVERED, S.EXCEPTION, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.COMPLETED, S.EXCEPTION, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.COMPLETED, S.EXCEPTION}),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
    # held and frozen orders go back by release (to the status they left), or are cancelled
    S.ON_HOLD: frozenset({S.CANCELLED, S.EXCEPTION}),
    S.EXCEPTION: frozenset({S.CANCELLED}),
}

TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# A hold or a freeze remembers the status it interrupted; release returns there.
PAUSED = frozenset({S.ON_HOLD, S.EXCEPTION})
# Orders in these statuses should move on by themselves; one that does not is stuck.
AUTOMATIC = frozenset({S.PAID})
# Cancelling after these would need the parcel back: that is after-sales, not cancel.
CANCELLABLE = frozenset(status for status, targets in TRANSITIONS.items() if S.CANCELLED in targets)


class IllegalTransition(Exception):
    def __init__(self, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"{current.value} → {target.value} is not a legal transition")
        self.current = current
        self.target = target


def is_legal(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def check(current: OrderStatus, target: OrderStatus) -> None:
    if not is_legal(current, target):
        raise IllegalTransition(current, target)


def release_target(resume_status: OrderStatus | None) -> OrderStatus:
    """Where a released hold or freeze goes: the interrupted status, or payment if none was kept."""
    if resume_status is None or resume_status in PAUSED or resume_status in TERMINAL:
        return S.PENDING_PAYMENT
    return resume_status
