"""Row-level scope: which orders a caller may see, as the gateway says in its signed assertion.

A customer sees only their own orders, a customer-service agent only the orders of the customers
assigned to them, a channel's key only its own channel's orders. Anything outside the scope is
answered NOT_FOUND, exactly like an unknown id, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.errors import PermissionDenied
from services.orders.domain.model import Channel, Order


@dataclass(frozen=True)
class Scope:
    customer_id: str = ""
    agent_id: str = ""
    channel: str = ""

    @property
    def unrestricted(self) -> bool:
        return not (self.customer_id or self.agent_id or self.channel)

    def hides(self, order: Order) -> bool:
        """Whether the order is outside what the scope's customer or channel may see (an agent's
        assignments are the store's to answer)."""
        if self.customer_id and order.buyer_id != self.customer_id:
            return True
        return bool(self.channel and order.channel.value != self.channel)


# the scope of staff and services: every row
EVERYTHING = Scope()


def check_channel(scope: Scope, channel: Channel | None, field: str = "channel") -> None:
    """A channel's key ingests for its own channel only."""
    if scope.channel and (channel is None or channel.value != scope.channel):
        raise PermissionDenied(f"{field}: this key may only send {scope.channel} orders")
