"""The canonical order: accepting one from a channel, revising it, and moving it through its life."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.kit.errors import InvalidArgument
from services.orders.domain import lifecycle
from services.orders.domain.lifecycle import CANCELLABLE, PAUSED, OrderStatus
from services.orders.domain.money import LineShare, split_order
from services.orders.domain.refunds import Refunds, TicketReport, TicketStep, status_after_refund
from services.orders.domain.refunds import apply as apply_ticket_report
from services.orders.domain.refunds import describe as describe_ticket
from services.orders.domain.shipping import (
    IN_WAREHOUSE,
    RANK,
    STEPS,
    Report,
    Shipment,
    ShipmentReport,
    ShippingPlan,
    Stage,
    describe,
)

__all__ = ["OrderStatus"]

MAX_LINES = 500
MAX_QUANTITY = 100_000
MAX_UNIT_PRICE_MINOR = 10**12
MAX_ADDRESS_FIELD = 2000
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_REFERENCE = re.compile(r"^[\w.\-:/#]{1,64}$")
# Until picking starts the warehouse can still ship to a corrected address.
ADDRESS_EDITABLE = frozenset(
    {OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.ALLOCATED, OrderStatus.ON_HOLD}
)
# the part of the lifecycle an order walks by following its shipments, one legal step at a time
FULFILMENT = (
    OrderStatus.ALLOCATED,
    OrderStatus.PICKING,
    OrderStatus.PACKED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
)


class Channel(StrEnum):
    TAOBAO = "TAOBAO"
    JD = "JD"
    PINDUODUO = "PINDUODUO"
    DOUYIN = "DOUYIN"
    KUAISHOU = "KUAISHOU"
    SHOPEE = "SHOPEE"
    OWN_SHOP = "OWN_SHOP"
    POS = "POS"


# channels we run ourselves: no marketplace vouches for their payments
SELF_RUN = frozenset({Channel.OWN_SHOP, Channel.POS})


class Priority(StrEnum):
    """How urgently the order should be delivered (routing ships an expedited order by express)."""

    STANDARD = "STANDARD"
    EXPEDITED = "EXPEDITED"
    MEMBER = "MEMBER"  # a member's order (a loyalty level on the channel)


class HoldCause(StrEnum):
    """Why the process manager stopped an order, in the form code acts on (`status_reason` says it
    in words, for people): what would let it go on."""

    NONE = ""
    UNROUTABLE = "UNROUTABLE"  # held: routing could not plan it (no coverage, no cold chain, …)
    OUT_OF_STOCK = "OUT_OF_STOCK"  # held: routing parked it out of stock, or its reservation was refused
    PAID_OUT_OF_STOCK = "PAID_OUT_OF_STOCK"  # frozen: paid, and no stock could be placed for it
    # held at acceptance: the customer has an after-sales ticket past its response limit (a policy)
    OVERDUE_TICKET = "OVERDUE_TICKET"
    RISK = "RISK"  # held at acceptance by the risk rules, for the `risk` role's review


class DiscountKind(StrEnum):
    PROMOTION = "PROMOTION"
    COUPON = "COUPON"
    POINTS = "POINTS"


@dataclass(frozen=True)
class Address:
    recipient_name: str
    phone: str
    country_code: str
    province: str
    city: str
    district: str
    detail: str
    postal_code: str = ""


@dataclass(frozen=True)
class OrderLine:
    sku: str
    title: str
    quantity: int
    unit_price_minor: int
    # The channel's own item-level discount; order-level discounts are apportioned on top.
    discount_minor: int = 0

    @property
    def amount_minor(self) -> int:
        return self.quantity * self.unit_price_minor - self.discount_minor


@dataclass(frozen=True)
class Discount:
    kind: DiscountKind
    amount_minor: int
    reference: str = ""


@dataclass(frozen=True)
class IngestOrder:
    """A channel order as its adapter normalised it; amounts in minor units of `currency`."""

    channel: Channel | None
    channel_order_id: str
    buyer_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address | None
    shipping_fee_minor: int
    placed_at: datetime | None
    discounts: tuple[Discount, ...] = ()
    # The channel's own status code, stored as received; `paid_at`/`cancelled` are what it means.
    channel_status: str = ""
    paid_at: datetime | None = None
    cancelled: bool = False
    # Later versions of the same channel order carry a later modified time.
    channel_modified_at: datetime | None = None
    buyer_note: str = ""
    # None: the request or payload said nothing, and the order is standard
    priority: Priority | None = None


# ---- domain events: recorded on the order, turned into timeline entries and NATS events -------


@dataclass(frozen=True)
class OrderCreated:
    status: OrderStatus


@dataclass(frozen=True)
class OrderUpdated:
    fields: tuple[str, ...]


@dataclass(frozen=True)
class StatusChanged:
    previous: OrderStatus
    status: OrderStatus
    reason: str


@dataclass(frozen=True)
class OrderPaid:
    paid_at: datetime
    amount_minor: int
    transaction_id: str


@dataclass(frozen=True)
class OrderAllocated:
    warehouses: tuple[str, ...]


@dataclass(frozen=True)
class OrderCancelled:
    reason: str
    was_paid: bool


@dataclass(frozen=True)
class OrderHeld:
    reason: str


@dataclass(frozen=True)
class OrderReleased:
    status: OrderStatus


@dataclass(frozen=True)
class OrderFrozen:
    reason: str
    attempted: OrderStatus | None


@dataclass(frozen=True)
class AlertRaised:
    kind: str
    severity: str
    message: str
    roles: tuple[str, ...] = ()  # who is expected to act (a role or a person); empty: operations


@dataclass(frozen=True)
class RiskHeld:
    """The risk rules held the order for review."""

    version: int  # the rule set's
    score: int
    hits: tuple[str, ...]
    frozen: bool  # the score reached the rule set's freeze score


@dataclass(frozen=True)
class SlaReached:
    """The order's SLA timer turned amber (its owner told) or red (escalated to the backup)."""

    stage: str
    category: str
    level: int  # sla.Level
    started_at: datetime
    deadline: datetime
    notify: str
    escalated: bool


@dataclass(frozen=True)
class ShipmentNoted:
    """Something logistics did or said about one of the order's shipments: a timeline entry."""

    kind: str
    detail: str


@dataclass(frozen=True)
class TicketNoted:
    """A step of one of the order's after-sales tickets: a timeline entry."""

    kind: str
    detail: str


@dataclass(frozen=True)
class ServiceAlert:
    """An alert raised outside any order being changed (a payment for an order it cannot touch, steps
    no worker takes, drift): it names the order only by id, if at all."""

    kind: str
    severity: str
    message: str
    order_id: str = ""
    # about a channel rather than an order (channel health): its repeats fold per channel and kind
    channel: str = ""


@dataclass
class Order:
    order_id: str
    channel: Channel
    channel_order_id: str
    buyer_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    shares: tuple[LineShare, ...]
    discounts: tuple[Discount, ...]
    shipping_address: Address
    shipping_fee_minor: int
    placed_at: datetime
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    channel_status: str = ""
    channel_modified_at: datetime | None = None
    paid_at: datetime | None = None
    buyer_note: str = ""
    resume_status: OrderStatus | None = None
    status_reason: str = ""
    warehouses: tuple[str, ...] = ()
    waybill_no: str = ""
    scanned_out_at: datetime | None = None
    version: int = 1
    priority: Priority = Priority.STANDARD
    hold_cause: HoldCause = HoldCause.NONE
    # routing's parcels, kept when the stock is reserved, for the shipments logistics opens once the
    # order is allocated (None: the order is not shipped through logistics)
    shipping_plan: ShippingPlan | None = None
    shipments: tuple[Shipment, ...] = ()
    refunds: Refunds = field(default_factory=Refunds)
    events: list[object] = field(default_factory=list, compare=False, repr=False)

    @property
    def goods_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def discount_minor(self) -> int:
        return sum(discount.amount_minor for discount in self.discounts)

    @property
    def payable_minor(self) -> int:
        return self.goods_minor - self.discount_minor + self.shipping_fee_minor

    @property
    def total_minor(self) -> int:
        return self.payable_minor

    @property
    def is_paid(self) -> bool:
        return self.paid_at is not None

    # ---- moving through the lifecycle ---------------------------------------------------------

    def move_to(self, target: OrderStatus, reason: str, now: datetime) -> bool:
        """Apply a legal transition; an illegal one freezes the order instead and returns False."""
        if self.status is target and target is not OrderStatus.PARTIALLY_REFUNDED:
            return True
        if not lifecycle.is_legal(self.status, target):
            self.freeze(f"illegal transition {self.status.value} → {target.value}: {reason}", now, target)
            return False
        self._set_status(target, reason, now)
        return True

    def pay(self, paid_at: datetime, amount_minor: int, transaction_id: str, now: datetime) -> bool:
        if self.is_paid:
            return True
        if self.status is not OrderStatus.PENDING_PAYMENT and self.status not in PAUSED:
            self.freeze(
                f"payment {transaction_id} for an order in {self.status.value}", now, OrderStatus.PAID
            )
            return False
        self.paid_at = paid_at
        self.events.append(OrderPaid(paid_at, amount_minor, transaction_id))
        if self.status in PAUSED:
            # a paid order that is held stays held; it resumes as paid
            self.resume_status = OrderStatus.PAID
            self.updated_at = now
            return True
        return self.move_to(OrderStatus.PAID, f"payment {transaction_id}", now)

    def allocate(self, warehouses: tuple[str, ...], now: datetime) -> bool:
        self.warehouses = warehouses
        if self.move_to(OrderStatus.ALLOCATED, "stock committed at " + ", ".join(warehouses), now):
            self.events.append(OrderAllocated(warehouses))
            return True
        return False

    def hold(self, reason: str, now: datetime, cause: HoldCause = HoldCause.NONE) -> None:
        if self.status is OrderStatus.ON_HOLD:
            raise lifecycle.IllegalTransition(self.status, OrderStatus.ON_HOLD)
        lifecycle.check(self.status, OrderStatus.ON_HOLD)
        self.resume_status = self.status
        self._set_status(OrderStatus.ON_HOLD, reason, now, cause)
        self.events.append(OrderHeld(reason))

    def release(self, reason: str, now: datetime) -> OrderStatus:
        if self.status not in PAUSED:
            raise lifecycle.IllegalTransition(self.status, self.resume_status or OrderStatus.PENDING_PAYMENT)
        target = lifecycle.release_target(self.resume_status)
        if target is OrderStatus.PENDING_PAYMENT and self.is_paid:
            target = OrderStatus.PAID
        self.resume_status = None
        self._set_status(target, reason, now)
        self.events.append(OrderReleased(target))
        if self.shipments:  # the warehouse and the carriers went on meanwhile: catch up with them
            self.follow_shipments(now)
        return self.status

    def cancel(self, reason: str, now: datetime) -> None:
        if self.status is OrderStatus.CANCELLED:
            return
        if self.status not in CANCELLABLE:
            raise lifecycle.IllegalTransition(self.status, OrderStatus.CANCELLED)
        self.resume_status = None
        self._set_status(OrderStatus.CANCELLED, reason, now)
        self.events.append(OrderCancelled(reason, self.is_paid))

    def freeze(
        self,
        reason: str,
        now: datetime,
        attempted: OrderStatus | None = None,
        cause: HoldCause = HoldCause.NONE,
    ) -> None:
        """Stop the order where it is: EXCEPTION, the attempt recorded, an alert raised."""
        if self.status is not OrderStatus.EXCEPTION:
            if self.status not in PAUSED:
                self.resume_status = self.status
            self._set_status(OrderStatus.EXCEPTION, reason, now, cause)
        else:
            self.status_reason = reason
            self.hold_cause = cause
            self.updated_at = now
        self.events.append(OrderFrozen(reason, attempted))
        self.events.append(AlertRaised("order_exception", "high", f"order {self.order_id}: {reason}"))

    def record_proof(self, waybill_no: str, scanned_out_at: datetime | None, now: datetime) -> list[str]:
        """Keep a waybill number and a scan-out time; both are needed before SHIPPED."""
        changed = []
        if waybill_no and waybill_no != self.waybill_no:
            self.waybill_no = waybill_no
            changed.append("waybill_no")
        if scanned_out_at is not None and self.scanned_out_at is None:
            self.scanned_out_at = scanned_out_at
            changed.append("scanned_out_at")
        if changed:
            self.updated_at = now
        return changed

    @property
    def has_shipping_proof(self) -> bool:
        return bool(self.waybill_no) and self.scanned_out_at is not None

    # ---- following the shipments (logistics) ----------------------------------------------------

    @property
    def shipments_listed(self) -> bool:
        """Logistics answered which shipments the order has (CreateShipments): it knows them all."""
        return any(shipment.listed for shipment in self.shipments)

    @property
    def shipments_in_warehouse(self) -> bool:
        return any(shipment.stage in IN_WAREHOUSE for shipment in self.shipments)

    def shipments_answered(
        self, answer: Sequence[Shipment], now: datetime, *, cancelled: bool = False
    ) -> None:
        """Logistics' answer about the order's shipments, merged with what its events already told
        (an event may overtake the answer); `cancelled`: the answer to cancelling them."""
        known = {shipment.shipment_id: shipment for shipment in self.shipments}
        for shipment in answer:
            current = known.get(shipment.shipment_id)
            known[shipment.shipment_id] = current.merged(shipment) if current else shipment
        if cancelled:  # what logistics did not name, it holds no open shipment for
            named = {shipment.shipment_id for shipment in answer}
            for shipment_id, shipment in known.items():
                if shipment_id not in named and shipment.stage in IN_WAREHOUSE:
                    known[shipment_id] = replace(shipment, stage=Stage.CANCELLED)
        before = self.shipments
        self.shipments = tuple(known.values())
        self.updated_at = now
        parcels = "; ".join(
            f"{s.shipment_id} from {s.warehouse_id} by {s.carrier} ({s.stage.value.lower()})" for s in answer
        )
        if cancelled:
            if self.shipments != before or answer:
                self.events.append(
                    ShipmentNoted("shipments_cancelled", f"logistics cancelled: {parcels or 'none held'}")
                )
        else:
            self.events.append(ShipmentNoted("shipments_created", f"shipments at logistics: {parcels}"))
        self.follow_shipments(now)

    def report_shipment(self, report: ShipmentReport, now: datetime) -> bool:
        """A shipment's event from logistics; False when it tells nothing new (a late or repeated
        report: the shipment and the order never move back)."""
        shipments = list(self.shipments)
        index = next((i for i, s in enumerate(shipments) if s.shipment_id == report.shipment_id), None)
        if index is None:  # the event overtook CreateShipments' answer: the order learns of it here
            shipments.append(Shipment(report.shipment_id, report.warehouse_id, report.carrier, listed=False))
            index = len(shipments) - 1
        before = shipments[index]
        shipment = replace(
            before,
            warehouse_id=before.warehouse_id or report.warehouse_id,
            carrier=before.carrier or report.carrier,
            waybill_no=before.waybill_no or report.waybill_no,
        )
        # a step (picked, packed, …) is noted once per shipment, even late; a tracking node, a problem,
        # a return are news every time (the inbox drops repeated events)
        noted = report.kind not in before.reported
        if report.kind in STEPS:
            shipment = replace(shipment, reported=before.reported | {report.kind.value})
        match report.kind:
            case Report.PICKED:
                shipment = shipment.reached(Stage.PICKED)
            case Report.PACKED:
                shipment = shipment.reached(Stage.PACKED)
            case Report.SCANNED_OUT:
                if shipment.scanned_out_at is None:
                    shipment = replace(shipment, scanned_out_at=report.at or now)
            case Report.DELIVERED:
                delivered_at = before.delivered_at or report.at or now
                shipment = replace(shipment.reached(Stage.DELIVERED), delivered_at=delivered_at)
            case Report.EXCEPTION:
                self.events.append(
                    AlertRaised("shipment_exception", "medium", f"order {self.order_id}: {describe(report)}")
                )
        if shipment.out:  # scanned out and waybilled, whichever report came last
            shipment = shipment.reached(Stage.SHIPPED)
        if not noted and shipment == before:
            return False
        shipments[index] = shipment
        self.shipments = tuple(shipments)
        self.updated_at = now
        if noted:
            self.events.append(ShipmentNoted(report.kind.value, describe(report)))
        self.follow_shipments(now)
        return True

    # ---- after-sales ------------------------------------------------------------------------------

    @property
    def refund_in_progress(self) -> bool:
        return bool(self.refunds.in_progress)

    def report_ticket(self, report: TicketReport, now: datetime) -> bool:
        """A step of one of the order's tickets: on the timeline once; a refund sent to the provider
        marks the order as refunding (its status reason says so); a settled refund adds up what was
        paid back and moves the order to PARTIALLY_REFUNDED or REFUNDED; a failed one is alerted.
        Returns whether anything changed."""
        after, news = apply_ticket_report(self.refunds, report)
        if not news and after == self.refunds:
            return False
        self.refunds = after
        self.updated_at = now
        detail = describe_ticket(report)
        if news:
            self.events.append(TicketNoted(f"ticket_{report.step.value}", detail))
        match report.step:
            case TicketStep.REFUND_REQUESTED if self.refund_in_progress:
                self.status_reason = f"refund in progress ({detail})"
            case TicketStep.REFUNDED if news:
                target = status_after_refund(self.status, after, [line.quantity for line in self.lines])
                reason = f"refunded {report.cash_minor} ({detail})"
                if target is not None and (
                    target is not self.status or target is OrderStatus.PARTIALLY_REFUNDED
                ):
                    self.move_to(target, reason, now)
                else:
                    self.status_reason = reason
            case TicketStep.REFUND_FAILED if news:
                self.status_reason = f"refund failed ({detail})"
                self.events.append(AlertRaised("refund_failed", "high", f"order {self.order_id}: {detail}"))
        return True

    def _record_shipment_proof(self, shipment: Shipment, now: datetime) -> None:
        """The order's proof (DOMAIN.md §1) is its first shipment's waybill and scan-out; each
        shipment's own waybill stays with the shipment."""
        waybill = "" if self.waybill_no else shipment.waybill_no
        for name in self.record_proof(waybill, shipment.scanned_out_at, now):
            if name == "waybill_no":
                self.events.append(ShipmentNoted("proof", f"waybill_no recorded: {self.waybill_no}"))

    def follow_shipments(self, now: datetime) -> None:
        """Move the order as far as its shipments went, one legal step at a time, never back: PICKING
        at the first shipment picked; PACKED, SHIPPED and DELIVERED once every shipment got there (and
        only when the order knows every shipment); SHIPPED also needs the order's proof."""
        active = [shipment for shipment in self.shipments if shipment.stage is not Stage.CANCELLED]
        first_out = next((shipment for shipment in active if shipment.out), None)
        if first_out is not None and not self.has_shipping_proof:
            self._record_shipment_proof(first_out, now)
        if not active or self.status not in FULFILMENT:
            return
        complete = self.shipments_listed
        target = OrderStatus.ALLOCATED
        if complete and all(s.out and s.stage is Stage.DELIVERED for s in active):
            target = OrderStatus.DELIVERED
        elif complete and all(s.out for s in active):
            target = OrderStatus.SHIPPED
        elif complete and all(RANK[s.stage] >= RANK[Stage.PACKED] for s in active):
            target = OrderStatus.PACKED
        elif any(RANK[s.stage] >= RANK[Stage.PICKED] for s in active):
            target = OrderStatus.PICKING
        while FULFILMENT.index(self.status) < FULFILMENT.index(target):
            following = FULFILMENT[FULFILMENT.index(self.status) + 1]
            if following is OrderStatus.SHIPPED and not self.has_shipping_proof:
                missing = "scan-out" if self.waybill_no else "waybill number"
                self.events.append(ShipmentNoted("waiting_for_proof", f"shipped needs the {missing}"))
                return
            self.move_to(following, _FOLLOWING[following].format(count=len(active)), now)

    def _set_status(
        self, target: OrderStatus, reason: str, now: datetime, cause: HoldCause = HoldCause.NONE
    ) -> None:
        previous = self.status
        self.status = target
        self.status_reason = reason
        self.hold_cause = cause
        self.updated_at = now
        self.events.append(StatusChanged(previous, target, reason))

    # ---- a newer version of the channel order --------------------------------------------------

    def revise(self, command: IngestOrder, now: datetime) -> bool:
        """Apply a later version of the channel order: what may still change does; returns whether
        it was newer. Lines and money are fixed at acceptance (refunds are computed from them)."""
        if not _is_newer(command.channel_modified_at, self.channel_modified_at):
            return False
        changed: list[str] = []
        if command.channel_status and command.channel_status != self.channel_status:
            self.channel_status = command.channel_status
            changed.append("channel_status")
        if command.buyer_note != self.buyer_note:
            self.buyer_note = command.buyer_note
            changed.append("buyer_note")
        if (
            command.shipping_address is not None
            and command.shipping_address != self.shipping_address
            and self.status in ADDRESS_EDITABLE
            and not self.shipments  # logistics' shipments carry the address they were opened with
        ):
            _validate_address(command.shipping_address)
            self.shipping_address = command.shipping_address
            changed.append("shipping_address")
        self.channel_modified_at = command.channel_modified_at
        self.updated_at = now
        if changed:
            self.events.append(OrderUpdated(tuple(changed)))
        if command.cancelled and self.status is not OrderStatus.CANCELLED:
            if self.status in CANCELLABLE:
                self.cancel(f"cancelled on {self.channel.value}", now)
            else:
                self.freeze(f"{self.channel.value} cancelled an order already {self.status.value}", now)
        elif command.paid_at is not None and not self.is_paid:
            self.pay(
                command.paid_at, self.payable_minor, f"{self.channel.value}:{self.channel_order_id}", now
            )
        return True


_FOLLOWING = {
    OrderStatus.PICKING: "logistics: picking started",
    OrderStatus.PACKED: "logistics: packed ({count} of {count} shipments)",
    OrderStatus.SHIPPED: "logistics: scanned out with the waybill ({count} of {count} shipments)",
    OrderStatus.DELIVERED: "logistics: delivered ({count} of {count} shipments)",
}


def _is_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    return incoming is not None and (stored is None or incoming > stored)


def is_currency_code(code: str) -> bool:
    return bool(_CURRENCY.match(code))


def accept(command: IngestOrder, order_id: str, now: datetime) -> Order:
    """Validate a channel order and make it a canonical order; money is apportioned here, once."""
    channel = _validate(command)
    assert command.shipping_address is not None
    discounts = {kind: 0 for kind in DiscountKind}
    for discount in command.discounts:
        discounts[discount.kind] += discount.amount_minor
    shares = split_order(
        [line.amount_minor for line in command.lines],
        discounts[DiscountKind.PROMOTION],
        discounts[DiscountKind.COUPON],
        discounts[DiscountKind.POINTS],
        command.shipping_fee_minor,
    )
    order = Order(
        order_id=order_id,
        channel=channel,
        channel_order_id=command.channel_order_id,
        buyer_id=command.buyer_id,
        currency=command.currency,
        lines=command.lines,
        shares=tuple(shares),
        discounts=command.discounts,
        shipping_address=command.shipping_address,
        shipping_fee_minor=command.shipping_fee_minor,
        placed_at=command.placed_at or now,
        status=OrderStatus.PENDING_PAYMENT,
        created_at=now,
        updated_at=now,
        channel_status=command.channel_status,
        channel_modified_at=command.channel_modified_at or command.placed_at,
        buyer_note=command.buyer_note,
        priority=command.priority or Priority.STANDARD,
    )
    order.events.append(OrderCreated(order.status))
    if command.cancelled:
        order.cancel(f"cancelled on {channel.value} before it reached us", now)
    elif command.paid_at is not None:
        order.pay(command.paid_at, order.payable_minor, f"{channel.value}:{command.channel_order_id}", now)
    elif order.payable_minor == 0 and channel in SELF_RUN:
        # nothing to collect (an after-sales replacement, a fully discounted order): no payment record
        # will ever come, and none is needed
        order.pay(now, 0, f"nothing to pay:{command.channel_order_id}", now)
    return order


def vouched(command: IngestOrder) -> IngestOrder:
    """A channel payload's facts as far as its channel can vouch for them.

    A marketplace collects the money itself, so its "paid" status is a payment. Our own shop and tills
    do not: their payload's paid status is kept as `channel_status`, but the order stays PENDING_PAYMENT
    until its payment record arrives (ReportPayment, a payment webhook). A canonical order that sets
    `paid_at` for such a channel is refused instead (see `violations`): there the caller chose the field.
    """
    if command.channel in SELF_RUN and command.paid_at is not None:
        return replace(command, paid_at=None)
    return command


def without_events(order: Order) -> Order:
    return replace(order, events=[])


def _validate(command: IngestOrder) -> Channel:
    found = violations(command)
    if found:
        raise InvalidArgument.of(found)
    assert command.channel is not None
    return command.channel


def violations(command: IngestOrder) -> list[tuple[str, str]]:
    """Every (field, problem) of a channel order, in the order of its fields: the first one named is
    the first one wrong, and a line that does not exist is never blamed."""
    found: list[tuple[str, str]] = []
    if command.channel is None:
        found.append(("channel", "is required"))
    if not _REFERENCE.match(command.channel_order_id):
        found.append(("channel_order_id", "must be 1-64 letters, digits or . - _ : / #"))
    if len(command.buyer_id) > 128:
        found.append(("buyer_id", "must be at most 128 characters"))
    if not command.lines:
        found.append(("lines", "an order needs at least one line"))
    elif len(command.lines) > MAX_LINES:
        found.append(("lines", f"at most {MAX_LINES} lines per order"))
    else:
        if not command.currency:
            found.append(("lines[0].unit_price.currency_code", "is required"))
        elif not is_currency_code(command.currency):
            found.append(("lines[0].unit_price.currency_code", "must be an ISO 4217 code such as CNY"))
        for index, line in enumerate(command.lines):
            found += _line_violations(index, line)
    found += _address_violations(command.shipping_address)
    if not 0 <= command.shipping_fee_minor <= MAX_UNIT_PRICE_MINOR:
        found.append(("shipping_fee.amount_minor", "must be between 0 and 10^12"))
    for index, discount in enumerate(command.discounts):
        if not 0 <= discount.amount_minor <= MAX_UNIT_PRICE_MINOR:
            found.append((f"discounts[{index}].amount.amount_minor", "must be between 0 and 10^12"))
        if len(discount.reference) > 128:
            found.append((f"discounts[{index}].reference", "must be at most 128 characters"))
    goods = sum(line.amount_minor for line in command.lines)
    if sum(discount.amount_minor for discount in command.discounts) > goods:
        found.append(("discounts", f"together exceed the goods amount {goods}"))
    if len(command.channel_status) > 64:
        found.append(("channel_status", "must be at most 64 characters"))
    if command.paid_at is not None and command.channel in SELF_RUN:
        # the channel's word is only a payment on a marketplace, which collected the money itself; our
        # own shop and tills are paid by a payment record (ReportPayment, a payment webhook), never by a
        # field the ingesting caller sets
        found.append(("paid_at", "own-shop and POS orders become paid only through a payment record"))
    if len(command.buyer_note) > 2000:
        found.append(("buyer_note", "must be at most 2000 characters"))
    return found


def _line_violations(index: int, line: OrderLine) -> list[tuple[str, str]]:
    where = f"lines[{index}]"
    found: list[tuple[str, str]] = []
    if not _REFERENCE.match(line.sku):
        found.append((f"{where}.sku", "must be 1-64 letters, digits or . - _ : / #"))
    if len(line.title) > 500:
        found.append((f"{where}.title", "must be at most 500 characters"))
    if not 1 <= line.quantity <= MAX_QUANTITY:
        found.append((f"{where}.quantity", f"must be between 1 and {MAX_QUANTITY}"))
    if not 0 <= line.unit_price_minor <= MAX_UNIT_PRICE_MINOR:
        found.append((f"{where}.unit_price.amount_minor", "must be between 0 and 10^12"))
    if not 0 <= line.discount_minor <= line.quantity * line.unit_price_minor:
        found.append((f"{where}.discount.amount_minor", "must be between 0 and the line's price"))
    return found


def _validate_address(address: Address | None) -> None:
    found = _address_violations(address)
    if found:
        raise InvalidArgument.of(found)


def _address_violations(address: Address | None) -> list[tuple[str, str]]:
    if address is None:
        return [("shipping_address", "is required")]
    found: list[tuple[str, str]] = []
    for name in ("recipient_name", "phone", "province", "city", "detail"):
        if not getattr(address, name).strip():
            found.append((f"shipping_address.{name}", "is required"))
    for name in ("recipient_name", "phone", "province", "city", "district", "detail", "postal_code"):
        if len(getattr(address, name)) > MAX_ADDRESS_FIELD:
            found.append((f"shipping_address.{name}", f"must be at most {MAX_ADDRESS_FIELD} characters"))
    if not re.match(r"^[A-Z]{2}$", address.country_code):
        found.append(("shipping_address.country_code", "must be an ISO 3166-1 alpha-2 code such as CN"))
    return found
