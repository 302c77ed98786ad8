"""Opening an order's shipments (one per planned warehouse, idempotent on order and warehouse),
reading one, and cancelling those still in the warehouse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.logistics.domain.carriers import product_of
from services.logistics.domain.commands import CreateShipments
from services.logistics.domain.docks import Docks
from services.logistics.domain.model import GOODS_TYPES, IN_WAREHOUSE, Shipment, ShipmentFact
from services.logistics.handlers.ports import UnitOfWork

MAX_ID = 64


def validate(command: CreateShipments) -> None:
    problems: list[tuple[str, str]] = []
    if not command.order_id.strip() or len(command.order_id) > MAX_ID:
        problems.append(("order_id", f"is required (at most {MAX_ID} characters)"))
    for field, value in (
        ("address.province", command.destination.province),
        ("address.city", command.destination.city),
        ("address.detail", command.recipient.detail),
        ("address.recipient_name", command.recipient.name),
        ("address.phone", command.recipient.phone),
    ):
        if not value.strip():
            problems.append((field, "is required: the carrier delivers to it"))
    if not command.shipments:
        problems.append(("shipments", "is required: at least one planned shipment"))
    warehouses: set[str] = set()
    for index, planned in enumerate(command.shipments):
        where = f"shipments[{index}]"
        if not planned.warehouse_id.strip() or len(planned.warehouse_id) > MAX_ID:
            problems.append((f"{where}.warehouse_id", "is required"))
        elif planned.warehouse_id in warehouses:
            problems.append((f"{where}.warehouse_id", f"{planned.warehouse_id} is planned twice"))
        warehouses.add(planned.warehouse_id)
        try:
            product_of(planned.carrier, f"{where}.carrier")
        except InvalidArgument as error:
            problems.extend(error.violations)
        if not planned.lines:
            problems.append((f"{where}.lines", "is required: a shipment carries at least one line"))
        for number, line in enumerate(planned.lines):
            if not line.sku.strip():
                problems.append((f"{where}.lines[{number}].sku", "is required"))
            if line.quantity <= 0:
                problems.append((f"{where}.lines[{number}].quantity", "must be at least 1"))
            if line.goods_type not in GOODS_TYPES:
                problems.append(
                    (f"{where}.lines[{number}].goods_type", f"must be one of {', '.join(GOODS_TYPES)}")
                )
    if problems:
        raise InvalidArgument.of(problems)


async def create_shipments(
    uow: UnitOfWork, command: CreateShipments, known_docks: Docks | None = None
) -> list[Shipment]:
    """The order's shipments, one per planned warehouse (idempotent on order and warehouse); each
    starts at its warehouse's dock unless the plan names the origin."""
    validate(command)
    known_docks = known_docks or Docks()
    async with uow:
        now = uow.clock.now()
        for planned in command.shipments:
            shipment = Shipment(
                shipment_id=new_id(),
                order_id=command.order_id,
                warehouse_id=planned.warehouse_id,
                carrier=planned.carrier,
                service=planned.service,
                lines=planned.lines,
                priority=command.priority,
                deadline=command.deadline,
                destination=command.destination,
                recipient=command.recipient,
                origin=known_docks.origin(planned.warehouse_id, planned.origin),
                customer_id=command.customer_id,
                channel=command.channel,
                created_at=now,
                updated_at=now,
            )
            if await uow.shipments.add(shipment, command.decision_id):
                uow.emit(
                    ShipmentFact(
                        "ShipmentCreated",
                        shipment.shipment_id,
                        shipment.order_id,
                        shipment.warehouse_id,
                        shipment.carrier,
                        "",
                        "",
                        shipment.status,
                    )
                )
        found = await uow.shipments.for_order(command.order_id)
        await uow.commit()
    return found


async def get_shipment(uow: UnitOfWork, shipment_id: str, of_order: str = "") -> Shipment:
    """The shipment; with `of_order`, a shipment of another order is answered like an unknown one (the
    order named is how far a customer or an agent reaches, never a hint that the shipment exists)."""
    async with uow:
        found = await uow.shipments.get(shipment_id)
    if found is None or (of_order and found.order_id != of_order):
        raise NotFound(f"shipment {shipment_id[:64]} not found")
    return found


async def cancel_shipments(uow: UnitOfWork, order_id: str) -> list[Shipment]:
    """Cancel every shipment of the order still in the warehouse; one that left it is refused by name."""
    async with uow:
        shipments = await uow.shipments.for_order(order_id, lock=True)
        if not shipments:
            raise NotFound(f"order {order_id[:64]} has no shipments")
        now = uow.clock.now()
        for shipment in shipments:
            if shipment.cancel(now):
                await uow.shipments.save(shipment)
        await uow.commit()
    return shipments


async def cancel_in_transaction(uow: UnitOfWork, order_id: str) -> int:
    """The order was cancelled (its event, in the consumer's inbox transaction: no commit here): its
    shipments still in the warehouse are cancelled; one that left already is left to after-sales."""
    now = uow.clock.now()
    cancelled = 0
    for shipment in await uow.shipments.for_order(order_id, lock=True):
        if shipment.status in IN_WAREHOUSE and shipment.cancel(now):
            await uow.shipments.save(shipment)
            cancelled += 1
    return cancelled


async def hold_in_transaction(uow: UnitOfWork, order_id: str, reason: str, at: datetime | None) -> int:
    """The order was held or frozen at `at` (its event, in the consumer's inbox transaction): its
    shipments still in the warehouse are neither picked, packed nor shipped until it is released."""
    now = uow.clock.now()
    held = 0
    for shipment in await uow.shipments.for_order(order_id, lock=True):
        if shipment.hold(reason, at or now, now):
            await uow.shipments.save(shipment)
            held += 1
    return held


async def release_in_transaction(uow: UnitOfWork, order_id: str, at: datetime | None) -> int:
    """The order was released at `at`: the warehouse takes its shipments again."""
    now = uow.clock.now()
    released = 0
    for shipment in await uow.shipments.for_order(order_id, lock=True):
        if shipment.release(at or now, now):
            await uow.shipments.save(shipment)
            released += 1
    return released


def emit_recorded(uow: UnitOfWork, shipment: Shipment) -> None:
    """Publish what the shipment's moves recorded, in order."""
    for event in shipment.events:
        uow.emit(event)
    shipment.events.clear()


NewUnitOfWork = Callable[[], UnitOfWork]
