"""What routing is asked to do."""

from __future__ import annotations

from dataclasses import dataclass

from services.routing.domain.model import RouteLine


@dataclass(frozen=True)
class PlanCommand:
    """Plan an order's fulfilment, as the caller wrote its address and lines (not yet normalised)."""

    order_id: str
    province: str
    city: str
    lines: tuple[RouteLine, ...]
    priority: str = "standard"
    country: str = "CN"
    # the caller could not reserve this planned decision's stock: decide again, superseding it
    refused_decision_id: str = ""
