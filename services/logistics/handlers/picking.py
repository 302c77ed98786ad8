"""The warehouse's side: pick tasks in priority order, pick lists (waves), and the scans that confirm
picking, packing and the scan-out."""

from __future__ import annotations

import random
from collections.abc import Sequence

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id
from services.logistics.domain.model import Shipment
from services.logistics.domain.picking import DEFAULT_PICK_LIST, MAX_PICK_LIST, in_pick_order
from services.logistics.domain.tracking import PollPolicy
from services.logistics.handlers.ports import UnitOfWork
from services.logistics.handlers.shipments import emit_recorded

MAX_TASKS = 1000


async def pick_tasks(uow: UnitOfWork, warehouse_id: str, limit: int) -> list[Shipment]:
    if not warehouse_id.strip():
        raise InvalidArgument("warehouse_id", "is required")
    async with uow:
        return await uow.shipments.pick_tasks(warehouse_id, min(limit or 100, MAX_TASKS))


async def create_pick_list(
    uow: UnitOfWork, warehouse_id: str, max_tasks: int, shipment_ids: Sequence[str]
) -> tuple[str, list[Shipment]]:
    """The warehouse's next tasks (or exactly the shipments named) on one new pick list."""
    if not warehouse_id.strip():
        raise InvalidArgument("warehouse_id", "is required")
    if max_tasks < 0 or max_tasks > MAX_PICK_LIST:
        raise InvalidArgument(
            "max_tasks", f"must be between 0 (the default, {DEFAULT_PICK_LIST}) and {MAX_PICK_LIST}"
        )
    if len(shipment_ids) > MAX_PICK_LIST:
        raise InvalidArgument("shipment_ids", f"at most {MAX_PICK_LIST}")
    async with uow:
        now = uow.clock.now()
        if shipment_ids:
            named = list(dict.fromkeys(shipment_ids))
            chosen = await uow.shipments.get_many(named, lock=True)
            missing = sorted(set(named) - {s.shipment_id for s in chosen})
            if missing:
                raise NotFound(f"shipment {missing[0][:64]} not found")
            for shipment in chosen:
                if shipment.warehouse_id != warehouse_id:
                    raise FailedPrecondition(
                        f"shipment {shipment.shipment_id} ships from {shipment.warehouse_id}, "
                        f"not from {warehouse_id}: wrong warehouse"
                    )
        else:
            chosen = await uow.shipments.pick_tasks(warehouse_id, max_tasks or DEFAULT_PICK_LIST, lock=True)
        if not chosen:
            raise FailedPrecondition(f"warehouse {warehouse_id[:64]} has no shipment waiting to be picked")
        pick_list_id = new_id()
        await uow.pick_lists.add(pick_list_id, warehouse_id, now)
        for shipment in chosen:
            shipment.start_picking(pick_list_id, now)
            await uow.shipments.save(shipment)
        await uow.commit()
    return pick_list_id, in_pick_order(chosen)


async def _scan(
    uow: UnitOfWork,
    shipment_id: str,
    move: str,
    warehouse_id: str,
    *,
    by_waybill: bool = False,
    poll: PollPolicy | None = None,
) -> Shipment:
    if not warehouse_id.strip():
        raise InvalidArgument("warehouse_id", "is required")
    async with uow:
        shipment = await uow.shipments.by_waybill(shipment_id, lock=True) if by_waybill else None
        shipment = shipment or await uow.shipments.get(shipment_id, lock=True)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id[:64]} not found")
        now = uow.clock.now()
        changed = getattr(shipment, move)(warehouse_id, now)
        if changed:
            await uow.shipments.save(shipment)
            if poll is not None:
                # on its way: the poll follows it from now on, in case its pushes get lost
                await uow.shipments.set_next_poll(shipment.shipment_id, poll.next_poll(now, random.random()))
            emit_recorded(uow, shipment)
            await uow.commit()
    return shipment


async def confirm_pick(uow: UnitOfWork, warehouse_id: str, shipment_id: str) -> Shipment:
    return await _scan(uow, shipment_id, "confirm_pick", warehouse_id)


async def confirm_packed(uow: UnitOfWork, warehouse_id: str, shipment_id: str) -> Shipment:
    return await _scan(uow, shipment_id, "confirm_packed", warehouse_id)


async def scan_out(uow: UnitOfWork, warehouse_id: str, code: str, poll: PollPolicy | None = None) -> Shipment:
    """The dock scans the label's waybill number (or the shipment id)."""
    code = code.strip()
    if not code:
        raise InvalidArgument("code", "is required: the waybill number or the shipment id scanned")
    return await _scan(uow, code, "scan_out", warehouse_id, by_waybill=True, poll=poll or PollPolicy())
