"""ListAuditRecords: the audit log, newest first, filtered by principal, method, target or trace."""

from __future__ import annotations

from collections.abc import Callable

from services.gateway.domain.audit import AuditRecord
from services.gateway.handlers.ports import UnitOfWork


class AuditLogReader:
    def __init__(self, new_uow: Callable[[], UnitOfWork]) -> None:
        self.new_uow = new_uow

    async def page(
        self, principal: str, method: str, target_id: str, trace_id: str, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        uow = self.new_uow()
        async with uow:
            return await uow.audit.page(principal, method, target_id, trace_id, page_size, page_token)
