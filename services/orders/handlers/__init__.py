"""Orders use cases, each inside one unit of work (handlers.ports says what they may ask of it).

Calls to routing, inventory and logistics (the process manager's steps) live in `orchestrator.py`; they never
run while a transaction here is open.
"""

from services.orders.handlers import risk
from services.orders.handlers.common import Changes, Policy, check_order_id, save_order
from services.orders.handlers.dead_letters import BulkReplay, replay_dead_steps, replay_payment, replay_step
from services.orders.handlers.ingest import ChannelPayload, Ingested, Outcome, ingest
from services.orders.handlers.manual import (
    agent_customers,
    assign_customers,
    cancel_order,
    hold_order,
    release_order,
)
from services.orders.handlers.payments import due_payments, handle_payment, report_payment, review_payment
from services.orders.handlers.ports import UnitOfWork
from services.orders.handlers.reactions import reservation_expired, route_found, stock_arrived
from services.orders.handlers.reads import get_order, get_order_by_channel
from services.orders.handlers.refunds import ticket_reported, tickets_reported
from services.orders.handlers.risk_cache import RiskRules
from services.orders.handlers.shipping import shipment_reported, shipments_reported
from services.orders.handlers.sla import (
    Reached,
    SlaRun,
    check_queue,
    check_sla,
    queue_owners,
    set_order_owners,
    set_queue_owners,
)
from services.orders.handlers.statements import import_statement, repair
from services.orders.handlers.status import SourceReport, report_source_status
from services.orders.handlers.sweep import Sweep, sweep_stuck

__all__ = [
    "BulkReplay",
    "Changes",
    "ChannelPayload",
    "Ingested",
    "Outcome",
    "Policy",
    "Reached",
    "RiskRules",
    "SlaRun",
    "SourceReport",
    "Sweep",
    "UnitOfWork",
    "agent_customers",
    "assign_customers",
    "cancel_order",
    "check_order_id",
    "check_queue",
    "check_sla",
    "due_payments",
    "get_order",
    "get_order_by_channel",
    "handle_payment",
    "hold_order",
    "import_statement",
    "ingest",
    "queue_owners",
    "release_order",
    "repair",
    "replay_dead_steps",
    "replay_payment",
    "replay_step",
    "report_payment",
    "report_source_status",
    "reservation_expired",
    "review_payment",
    "risk",
    "route_found",
    "save_order",
    "set_order_owners",
    "set_queue_owners",
    "shipment_reported",
    "shipments_reported",
    "stock_arrived",
    "sweep_stuck",
    "ticket_reported",
    "tickets_reported",
]
