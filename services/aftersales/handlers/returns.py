"""The return desk: a returned parcel is found by the original order's QR code (what logistics printed
on its pick list and packing slip: the order id), its units are counted, the intact ones go back into
stock through inventory (idempotent on the return id, the ledger entry naming the ticket), the damaged
ones are recorded and not restocked, and a return-and-refund ticket asks for its money."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from services.aftersales.domain.commands import ReceivedLine
from services.aftersales.domain.events import AlertRaised
from services.aftersales.domain.lifecycle import REFUNDS, RETURNS, TicketKind, TicketStatus
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.common import Policy, save
from services.aftersales.handlers.ports import Inventory, Orders, RestockJob, UnitOfWork
from services.aftersales.handlers.tickets import request_refund
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

log = logging.getLogger(__name__)
S = TicketStatus
WAITING = (S.APPROVED, S.RETURN_PENDING)
MAX_CODE = 128


def order_of_code(code: str) -> str:
    """The order a scanned QR code names (the code is the order id itself)."""
    order_id = code.strip()
    if not order_id or len(order_id) > MAX_CODE:
        raise InvalidArgument("order_code", "is required: scan the order's QR code from its packing slip")
    return order_id


def return_id(ticket: Ticket) -> str:
    """The restock's id at inventory: one per ticket, so a repeated scan restocks once."""
    return f"RT{ticket.ticket_id}"[:64]


def replacement_job(ticket: Ticket, warehouse_id: str) -> RestockJob | None:
    """An exchange's replacement: the same SKUs again, one for every unit that came back."""
    units: dict[str, int] = {}
    for line in ticket.received:
        if line.quantity > 0:
            sku = ticket.order.lines[line.line_index].sku
            units[sku] = units.get(sku, 0) + line.quantity
    if not units:
        return None
    return RestockJob(
        f"EX{ticket.ticket_id}"[:64],
        ticket.ticket_id,
        ticket.order_id,
        warehouse_id,
        tuple(sorted(units.items())),
        0,
        kind="replacement",
    )


def restock_job(ticket: Ticket, warehouse_id: str) -> RestockJob | None:
    units: dict[str, int] = {}
    for line in ticket.received:
        intact = line.quantity - line.damaged
        if intact > 0:
            sku = ticket.order.lines[line.line_index].sku
            units[sku] = units.get(sku, 0) + intact
    if not units:
        return None
    return RestockJob(
        return_id(ticket), ticket.ticket_id, ticket.order_id, warehouse_id, tuple(sorted(units.items())), 0
    )


async def receive_return(
    uow: UnitOfWork,
    policy: Policy,
    code: str,
    warehouse_id: str,
    lines: Sequence[ReceivedLine],
    ticket_id: str = "",
) -> tuple[Ticket, int]:
    """Record what came back for the order's ticket waiting for it (the one named, else the oldest);
    returns the ticket and the units to be restocked. A repeated scan of the same parcel changes nothing."""
    order_id = order_of_code(code)
    if not warehouse_id.strip() or len(warehouse_id) > 64:
        raise InvalidArgument("warehouse_id", "is required: the warehouse the return desk is at")
    async with uow:
        await uow.tickets.lock_order(order_id)
        tickets = await uow.tickets.of_order(order_id)
        if not tickets:
            raise NotFound(f"order {order_id[:64]} has no after-sales ticket")
        returns = [t for t in tickets if t.kind in RETURNS]
        if ticket_id:
            chosen = [t for t in returns if t.ticket_id == ticket_id.strip()]
            if not chosen:
                raise NotFound(f"ticket {ticket_id[:64]} is not a return of order {order_id[:64]}")
            ticket = chosen[0]
        else:
            waiting = sorted((t for t in returns if t.status in WAITING), key=lambda t: t.opened_at)
            received = [t for t in returns if t.received_at is not None]
            if not waiting and not received:
                raise FailedPrecondition(
                    f"order {order_id[:64]} has no approved return waiting for its goods"
                )
            ticket = waiting[0] if waiting else received[-1]
        if ticket.status not in WAITING and ticket.received_at is None:
            raise FailedPrecondition(
                f"ticket {ticket.ticket_id} is {ticket.status.value}: only an approved return is received"
            )
        now = uow.clock.now()
        if not ticket.receive_return(lines, now):
            job = restock_job(ticket, warehouse_id.strip())
            return ticket, sum(q for _, q in job.lines) if job else 0
        job = restock_job(ticket, warehouse_id.strip())
        if job is not None:
            await uow.restocks.add(job, now)
        replacement = (
            replacement_job(ticket, warehouse_id.strip()) if ticket.kind is TicketKind.EXCHANGE else None
        )
        if replacement is not None:
            await uow.restocks.add(replacement, now)
        if ticket.kind in REFUNDS:
            await request_refund(uow, ticket, tickets)
        await save(uow, ticket, policy)
        await uow.commit()
    return ticket, sum(q for _, q in job.lines) if job else 0


class RestockRunner:
    """Puts received returns back into stock at inventory and has orders ship exchanges' replacements;
    an outage is waited out, never dropped."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        inventory: Inventory,
        policy: Policy,
        batch: int = 50,
        orders: Orders | None = None,
    ) -> None:
        self.new_uow = new_uow
        self.inventory = inventory
        self.orders = orders
        self.policy = policy
        self.batch = batch

    async def run_due(self) -> int:
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            jobs = await uow.restocks.claim_due(now, now + self.policy.lease, self.batch)
            await uow.commit()
        done = 0
        for job in jobs:
            try:
                if job.kind == "replacement":
                    await self._replace(job)
                    done += 1
                    continue
                await self.inventory.restock(job)
            except (Unavailable, OSError) as failure:
                log.warning(
                    "restock %s for ticket %s waits for inventory: %s", job.return_id, job.ticket_id, failure
                )
                await self._later(job, str(failure))
                continue
            except (InvalidArgument, FailedPrecondition, NotFound) as refused:
                log.error("inventory refused restock %s: %s", job.return_id, refused)
                await self._later(job, f"refused: {refused}", timedelta(hours=1))
                continue
            uow = self.new_uow()
            async with uow:
                await uow.restocks.done(job.return_id, uow.clock.now())
                await uow.commit()
            done += 1
        return done

    async def _replace(self, job: RestockJob) -> None:
        """The exchange's replacement placed as an order of its own (orders reserves its stock and has
        logistics ship it); the ticket says REPLACEMENT_SHIPPED with that order's id."""
        if self.orders is None:
            raise Unavailable("no orders peer to place replacements with")
        replacement = await self.orders.place_replacement(job)
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            await uow.tickets.lock_order(job.order_id)
            ticket = await uow.tickets.get(job.ticket_id, lock=True)
            if ticket is not None and ticket.status is S.RETURN_RECEIVED:
                ticket.ship_replacement(replacement, now)
                await save(uow, ticket, self.policy)
            await uow.restocks.done(job.return_id, now)
            await uow.commit()

    async def _later(self, job: RestockJob, error: str, delay: timedelta | None = None) -> None:
        uow = self.new_uow()
        async with uow:
            wait = delay or self.policy.retry_delay(job.attempts + 1)
            await uow.restocks.retry(job.return_id, uow.clock.now() + wait, error[:500])
            await uow.commit()


async def replacement_ended(
    uow: UnitOfWork, policy: Policy, order_id: str, delivered: bool, reason: str, at: datetime
) -> bool:
    """Orders says how an order ended (delivered, or cancelled): when it is an exchange's replacement,
    a delivered one closes the exchange and a cancelled one is noted on the ticket and alerted, for a
    person to ship the goods another way or refund them. Runs in the consumer's inbox transaction.
    False when the order is no replacement, or the ticket has moved on."""
    found = await uow.tickets.by_replacement(order_id)
    if found is None:
        return False
    await uow.tickets.lock_order(found.order_id)
    ticket = await uow.tickets.get(found.ticket_id, lock=True)
    if ticket is None:
        return False
    now = uow.clock.now()
    if delivered:
        changed = ticket.replacement_delivered(order_id, at, now)
    else:
        changed = ticket.replacement_stopped(order_id, reason, now)
    if not changed:
        return False
    await save(uow, ticket, policy)
    if not delivered:
        uow.emit(
            AlertRaised(
                kind="exchange_replacement_cancelled",
                severity="high",
                message=(
                    f"ticket {ticket.ticket_id} (order {ticket.order_id}): {ticket.replacement_problem}; "
                    "the customer has no replacement: ship it again or refund the exchange"
                ),
                order_id=ticket.order_id,
                customer_id=ticket.customer_id,
                roles=("supervisor", "cs_lead"),
            )
        )
    return True
