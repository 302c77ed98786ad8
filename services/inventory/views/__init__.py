"""Read-side queries: lists and availability, straight from the tables."""

from services.inventory.views.availability import availability
from services.inventory.views.lists import list_ledger, list_replenishment_orders, list_skus

__all__ = ["availability", "list_ledger", "list_replenishment_orders", "list_skus"]
