"""The sandbox's memory: each channel's orders with their modified times, and what was pushed."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxes.channels import shapes


@dataclass
class ChannelOrder:
    channel: str
    order_id: str
    modified_at: datetime
    payload: dict[str, Any]
    pushed: bool = False
    push_answers: list[int] = field(default_factory=list)

    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()

    def summary(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "order_id": self.order_id,
            "modified_at": self.modified_at.isoformat(),
            "size_bytes": len(self.body()),
            "pushed": self.pushed,
            "push_answers": list(self.push_answers),
        }


class Store:
    def __init__(self, seed: int) -> None:
        self._dice = random.Random(seed)
        self._numbers = itertools.count(self._dice.randrange(10**6, 10**7))
        self.orders: dict[str, list[ChannelOrder]] = {"taobao": [], "douyin": []}

    def make(self, channel: str, at: datetime, pad_bytes: int) -> ChannelOrder:
        number = next(self._numbers)
        if channel == "taobao":
            tid = 3865500000000000000 + number * 10
            payload = shapes.taobao_trade(tid, at, self._dice, pad_bytes)
            order = ChannelOrder(channel, str(tid), at, payload)
        else:
            order_id = f"69218{number:014d}"
            payload = shapes.douyin_order(order_id, at, self._dice, pad_bytes)
            order = ChannelOrder(channel, order_id, at, payload)
        self.orders[channel].append(order)
        return order

    def modified_between(self, channel: str, start: datetime, end: datetime) -> list[ChannelOrder]:
        """Oldest change first, as both platforms page them."""
        found = [order for order in self.orders[channel] if start <= order.modified_at <= end]
        return sorted(found, key=lambda order: (order.modified_at, order.order_id))

    def clear(self) -> None:
        for orders in self.orders.values():
            orders.clear()
