"""The sandbox's memory: waybills per carrier, idempotent on the carrier's order id, and subscriptions.

Everything here is synchronous, so "does this order already have a waybill?" and the insert happen
without an await between them: two racing creates of one order id get one waybill.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from sandboxes.carriers.routes import Node, Step, city_in, plan_route

NUMBER_FORMATS: dict[str, tuple[str, int]] = {
    # carrier or Cainiao cp_code → (prefix, digits after it)
    "sf": ("SF", 13),
    "zto": ("75", 12),
    "yto": ("YT", 13),
    "ems": ("11", 11),
    "jd": ("JDVA", 11),
    "STO": ("77", 13),
    "YUNDA": ("43", 13),
}


@dataclass
class Reached:
    step: Step
    at: str
    route_id: str


@dataclass
class Waybill:
    carrier: str
    order_id: str | None
    waybill_no: str
    company: str
    origin: str
    destination: str
    route: list[Step]
    sort_no: int
    created_at: float
    reached: list[Reached] = field(default_factory=list)
    stalled: bool = False
    cancelled: bool = False

    @property
    def finished(self) -> bool:
        return len(self.reached) == len(self.route)

    @property
    def moving(self) -> bool:
        return not (self.stalled or self.cancelled or self.finished)

    @property
    def last_node(self) -> Node | None:
        return self.reached[-1].step.node if self.reached else None

    def summary(self) -> dict[str, object]:
        return {
            "carrier": self.carrier,
            "order_id": self.order_id,
            "waybill_no": self.waybill_no,
            "company": self.company,
            "origin": self.origin,
            "nodes": [reached.step.node.value for reached in self.reached],
            "stalled": self.stalled,
            "cancelled": self.cancelled,
        }


@dataclass
class Subscription:
    company: str
    callbackurl: str
    salt: str
    resultv2: str
    times: int = 1
    aborted: bool = False
    correction_told: bool = False


class Store:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:waybills")
        self._by_order: dict[tuple[str, str], Waybill] = {}
        self._by_number: dict[str, Waybill] = {}
        self._route_ids = itertools.count(1)
        self.subscriptions: dict[str, Subscription] = {}

    def find_order(self, carrier: str, order_id: str) -> Waybill | None:
        return self._by_order.get((carrier, order_id))

    def find_number(self, number: str) -> Waybill | None:
        return self._by_number.get(number)

    def waybills(self) -> list[Waybill]:
        return list(self._by_number.values())

    def next_route_id(self) -> str:
        return str(next(self._route_ids))

    def create(
        self,
        carrier: str,
        order_id: str | None,
        company: str,
        number_format: str,
        sender_address: str,
        recipient_address: str,
        now: float,
    ) -> tuple[Waybill, bool]:
        """The order's waybill and whether it is new; without an order id every call is a new waybill."""
        if order_id is not None and (existing := self.find_order(carrier, order_id)) is not None:
            return existing, False
        origin = city_in(sender_address, self._rng)
        destination = city_in(recipient_address, self._rng)
        waybill = Waybill(
            carrier=carrier,
            order_id=order_id,
            waybill_no=self._new_number(number_format),
            company=company,
            origin=origin,
            destination=destination,
            route=plan_route(origin, destination, self._rng),
            sort_no=self._rng.randrange(1, 100),
            created_at=now,
        )
        if order_id is not None:
            self._by_order[(carrier, order_id)] = waybill
        self._by_number[waybill.waybill_no] = waybill
        return waybill, True

    def _new_number(self, number_format: str) -> str:
        prefix, digits = NUMBER_FORMATS[number_format]
        while True:
            number = f"{prefix}{self._rng.randrange(10**digits):0{digits}d}"
            if number not in self._by_number:
                return number
