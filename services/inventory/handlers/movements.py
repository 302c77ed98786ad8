"""Stock from the warehouses: receipts, adjustments, restocked returns (once per id) and WMS counts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from services.inventory.domain.events import StockAdjusted
from services.inventory.domain.model import (
    Movement,
    StockRow,
    average_cost,
    check_quantity,
    check_reference,
    check_unit_cost,
    decide_count,
)
from services.inventory.domain.policy import Policy
from services.inventory.handlers.ports import UnitOfWork
from services.inventory.handlers.safety import apply_signals
from services.kit.errors import FailedPrecondition, InvalidArgument

MAX_REASON = 500


async def record_receipt(
    uow: UnitOfWork,
    policy: Policy,
    receipt_id: str,
    warehouse_id: str,
    sku: str,
    quantity: int,
    *,
    owner: str,
    unit_cost: int = 0,
) -> StockRow:
    """Goods in, once per receipt id of the caller `owner` (services.kit.idempotency.owner_of), at
    `unit_cost` a unit (minor units; 0: not given, the units count at the row's average)."""
    check_reference("receipt_id", receipt_id)
    check_quantity("quantity", quantity)
    check_unit_cost("unit_cost_minor", unit_cost)
    [row] = await _change_stock(
        uow,
        policy,
        "receipt",
        receipt_id,
        [(sku, quantity)],
        warehouse_id,
        Movement.RECEIPT,
        owner=owner,
        reason="received",
        costs={sku: unit_cost} if unit_cost else None,
    )
    return row


async def adjust_stock(
    uow: UnitOfWork,
    policy: Policy,
    adjustment_id: str,
    warehouse_id: str,
    sku: str,
    delta: int,
    reason: str,
    note: str,
    *,
    owner: str,
) -> StockRow:
    check_reference("adjustment_id", adjustment_id)
    if delta == 0:
        raise InvalidArgument("delta", "must not be zero")
    check_quantity("delta", abs(delta))
    if not reason:
        raise InvalidArgument("reason", "is required")
    [row] = await _change_stock(
        uow,
        policy,
        "adjust",
        adjustment_id,
        [(sku, delta)],
        warehouse_id,
        Movement.ADJUST,
        owner=owner,
        reason=f"{reason}: {note}"[:MAX_REASON] if note else reason,
    )
    return row


async def restock(
    uow: UnitOfWork,
    policy: Policy,
    return_id: str,
    order_id: str,
    warehouse_id: str,
    lines: list[tuple[str, int]],
    *,
    owner: str,
) -> list[StockRow]:
    """A received return puts its units back on hand, once per return id of its caller, at the cost
    they went out at (the order's commit): the cost of the sale is reversed exactly, whatever the
    average is now. A SKU the order never shipped from here comes back at the row's average."""
    check_reference("return_id", return_id)
    check_reference("order_id", order_id)
    if not lines:
        raise InvalidArgument("lines", "a restock needs at least one line")
    seen: set[str] = set()
    for index, (sku, quantity) in enumerate(lines):
        check_reference(f"lines[{index}].sku", sku)
        check_quantity(f"lines[{index}].quantity", quantity)
        if sku in seen:
            raise InvalidArgument(f"lines[{index}].sku", "duplicates an earlier line")
        seen.add(sku)
    return await _change_stock(
        uow,
        policy,
        "restock",
        return_id,
        sorted(lines),
        warehouse_id,
        Movement.RESTOCK,
        owner=owner,
        order_id=order_id,
        reason="return received",
        sale_costs=True,
    )


async def _change_stock(
    uow: UnitOfWork,
    policy: Policy,
    scope: str,
    key: str,
    changes: Sequence[tuple[str, int]],
    warehouse_id: str,
    kind: Movement,
    *,
    owner: str,
    order_id: str = "",
    reason: str = "",
    costs: dict[str, int] | None = None,
    sale_costs: bool = False,
) -> list[StockRow]:
    """On hand moves by each change, never below what open orders hold; a repeated key answers as before.
    Units coming in at a known cost (`costs` per SKU, or with `sale_costs` what the order's units went
    out at) move the row's average; every movement is on the ledger at its unit cost."""
    check_reference("warehouse_id", warehouse_id)
    for sku, _ in changes:
        check_reference("sku", sku)
    request: list[object] = [warehouse_id, list(changes), order_id, reason]
    digest = _request_hash([*request, sorted(costs.items())] if costs else request)
    async with uow:
        first = await uow.idempotency.claim(scope, key, digest, owner)
        if first is not None:
            return [StockRow(**row) for row in json.loads(first)]
        await known(uow, [sku for sku, _ in changes], warehouse_id)
        now = uow.clock.now()
        if sale_costs:
            costs = await uow.ledger.sale_costs(order_id, [sku for sku, _ in changes])
        rows, unit_costs = [], []
        for sku, delta in changes:
            current, _ = await uow.stock.lock(sku, warehouse_id)
            if current.on_hand + delta < current.reserved:
                raise FailedPrecondition(
                    f"{sku} at {warehouse_id}: on hand would fall to {current.on_hand + delta}, below the "
                    f"{current.reserved} units reserved for open orders"
                )
            cost = (costs or {}).get(sku)
            average = None
            if cost is not None and delta > 0:
                average = average_cost(
                    current.on_hand, await uow.stock.unit_cost(sku, warehouse_id), delta, cost
                )
            rows.append(await uow.stock.change_on_hand(sku, warehouse_id, delta, unit_cost=average))
            unit_costs.append(cost)
            uow.emit(StockAdjusted(sku, warehouse_id, kind, delta, rows[-1].on_hand, key, reason))
        await uow.ledger.record(
            kind,
            now,
            ((sku, warehouse_id, delta, 0) for sku, delta in changes),
            order_id=order_id,
            reference=key,
            reason=reason,
            unit_costs=unit_costs,
        )
        rows = await apply_signals(policy, uow, rows)
        await uow.idempotency.complete(scope, key, json.dumps([asdict(r) for r in rows]).encode(), owner)
        await uow.commit()
    return rows


def _request_hash(request: list[object]) -> str:
    """What a repeat must match: the same key for another request is refused (services.kit.idempotency)."""
    return hashlib.sha256(json.dumps(request).encode()).hexdigest()


async def record_stock_count(
    uow: UnitOfWork, policy: Policy, warehouse_id: str, sku: str, on_hand: int, version: int
) -> tuple[bool, StockRow]:
    """A WMS's absolute count. Our reservations are kept as they are; an older count changes nothing."""
    check_reference("warehouse_id", warehouse_id)
    check_reference("sku", sku)
    check_quantity("on_hand", on_hand, allow_zero=True)
    if version <= 0:
        raise InvalidArgument("version", "must be a positive, increasing number")
    async with uow:
        await known(uow, [sku], warehouse_id)
        current, current_version = await uow.stock.lock(sku, warehouse_id)
        decision = decide_count(current_version, current.on_hand, current.reserved, version, on_hand)
        if not decision.apply:
            return False, current
        row = await uow.stock.change_on_hand(sku, warehouse_id, decision.delta, count_version=version)
        reference = f"v{version}"
        await uow.ledger.record(
            Movement.COUNT,
            uow.clock.now(),
            [(sku, warehouse_id, decision.delta, 0)],
            reference=reference,
            reason="WMS count",
        )
        uow.emit(
            StockAdjusted(
                sku, warehouse_id, Movement.COUNT, decision.delta, row.on_hand, reference, "WMS count"
            )
        )
        [row] = await apply_signals(policy, uow, [row])
        await uow.commit()
    return True, row


async def known(uow: UnitOfWork, skus: list[str], warehouse_id: str) -> None:
    """InvalidArgument naming the field for a SKU or warehouse this inventory does not know."""
    unknown_skus, unknown_warehouses = await uow.catalogue.unknown(skus, [warehouse_id])
    if unknown_skus:
        raise InvalidArgument("sku", f"unknown SKU {sorted(unknown_skus)[0]}")
    if unknown_warehouses:
        raise InvalidArgument("warehouse_id", f"unknown warehouse {warehouse_id}")
