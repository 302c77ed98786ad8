"""The only inventory code that speaks SQL: tables, repositories and the unit of work."""

from services.inventory.store.tables import metadata
from services.inventory.store.unit_of_work import EventMapper, InventoryUnitOfWork

__all__ = ["EventMapper", "InventoryUnitOfWork", "metadata"]
