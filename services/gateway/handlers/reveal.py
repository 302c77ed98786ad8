"""RevealOrder: an order with its personal data unmasked, for a stated reason, audited either way."""

from __future__ import annotations

from typing import Any

from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import Caller
from services.gateway.handlers.ports import AuditLog, Orders
from services.kit.errors import InvalidArgument, NotFound

METHOD = f"{GATEWAY}/RevealOrder"
MAX_REASON_CHARS = 500


class Reveal:
    def __init__(self, orders: Orders, audit: AuditLog) -> None:
        self.orders = orders
        self.audit = audit

    async def reveal(self, caller: Caller, order_id: str, reason: str) -> Any:
        """The order as orders shows the caller it, unmasked; the record says why, and who asked."""
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument(
                "reason", "is required: say why personal data is needed (at most 500 characters)"
            )
        try:
            order = await self.orders.reveal(caller, order_id)
        except UpstreamFailure as error:
            await self.audit.audit(caller, METHOD, error.code, [order_id], f"reveal refused: {reason}")
            if error.code == "NOT_FOUND":
                raise NotFound(error.details or "order not found") from None
            if error.code == "INVALID_ARGUMENT":
                raise InvalidArgument(*error.first_violation()) from None
            raise
        await self.audit.audit(caller, METHOD, "OK", [order_id], f"reveal: {reason}")
        return order
