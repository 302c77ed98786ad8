"""After-sales use cases, each inside one unit of work (handlers.ports says what they may ask of it).

Calls to orders, inventory and the payment providers never run while a transaction here is open:
the order is read before a ticket opens; refunds and restocks are queued in the transaction and sent
by their runners after it."""

from services.aftersales.handlers.common import EVERYONE, Policy, Scope, not_found_order
from services.aftersales.handlers.refunds import RefundRunner, refund_ledger, report_refund
from services.aftersales.handlers.returns import RestockRunner, receive_return, replacement_ended
from services.aftersales.handlers.rules import activate, dry_run, list_versions, put_draft
from services.aftersales.handlers.sla import sweep
from services.aftersales.handlers.tickets import (
    TicketOpener,
    add_note,
    decide,
    get_ticket,
    list_tickets,
    open_new,
    retry_refund,
)

__all__ = [
    "EVERYONE",
    "Policy",
    "RefundRunner",
    "RestockRunner",
    "Scope",
    "TicketOpener",
    "activate",
    "add_note",
    "decide",
    "dry_run",
    "get_ticket",
    "list_tickets",
    "list_versions",
    "not_found_order",
    "open_new",
    "put_draft",
    "receive_return",
    "refund_ledger",
    "replacement_ended",
    "report_refund",
    "retry_refund",
    "sweep",
]
