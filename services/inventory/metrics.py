"""Inventory's business counters (beside the kit's RPC, outbox and consumer figures), counted by the
servicer where the reservation desk answers, never in the domain."""

from __future__ import annotations

from prometheus_client import Counter

RESERVATIONS = Counter(
    "oms_inventory_reservations",
    "Reservation requests by outcome: reserved, or refused (not enough sellable stock for a line: an "
    "oversell attempt the database's conditional update turned away)",
    ["outcome"],
)
_RESERVED = RESERVATIONS.labels("reserved")
_REFUSED = RESERVATIONS.labels("refused")


def count_reservation(reserved: bool) -> None:
    (_RESERVED if reserved else _REFUSED).inc()
