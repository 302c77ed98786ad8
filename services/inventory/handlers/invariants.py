"""The invariant check: every row recomputed from the ledger and the open reservations."""

from __future__ import annotations

from services.inventory.domain.events import InvariantBreached, invariant_alert
from services.inventory.domain.model import StockAudit
from services.inventory.handlers.ports import UnitOfWork


async def check_invariants(uow: UnitOfWork) -> tuple[int, list[StockAudit]]:
    """How many rows were checked, and those that disagree (announced, with an alert)."""
    async with uow:
        rows = await uow.ledger.audit()
        breaches = [row for row in rows if row.breached]
        if breaches:
            breached = InvariantBreached(tuple(breaches))
            uow.emit(breached, invariant_alert(breached))
            await uow.commit()
    return len(rows), breaches
