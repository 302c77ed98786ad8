"""Inventory use cases, each inside one unit of work (handlers.ports says what they may ask of it)."""

from services.inventory.domain.policy import LowStockScope, Policy
from services.inventory.handlers.buckets import set_stock_buckets
from services.inventory.handlers.catalogue import get_sku, put_sku, put_warehouse, set_stock_policy
from services.inventory.handlers.invariants import check_invariants
from services.inventory.handlers.movements import adjust_stock, record_receipt, record_stock_count, restock
from services.inventory.handlers.reservations import (
    ReserveDesk,
    commit_reservation,
    expire_reservations,
    get_reservation,
    move_reservation,
    release_reservation,
    reserve,
)
from services.inventory.handlers.safety import update_replenishment_order

__all__ = [
    "LowStockScope",
    "Policy",
    "ReserveDesk",
    "adjust_stock",
    "check_invariants",
    "commit_reservation",
    "expire_reservations",
    "get_reservation",
    "get_sku",
    "move_reservation",
    "put_sku",
    "put_warehouse",
    "record_receipt",
    "record_stock_count",
    "release_reservation",
    "reserve",
    "restock",
    "set_stock_buckets",
    "set_stock_policy",
    "update_replenishment_order",
]
