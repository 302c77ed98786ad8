"""The only orders code that speaks SQL to its own tables: tables, row mappers, repositories and the
unit of work (the read side's queries live in services.orders.views)."""

from services.orders.store.orders import ConcurrentChange, OrderRepository
from services.orders.store.rows import timeline_rows
from services.orders.store.tables import (
    channel_payloads_table,
    customer_assignments_table,
    drift_reports_table,
    metadata,
    order_lines_table,
    orders_table,
    payments_table,
    quarantine_table,
    source_reports_table,
    source_status_table,
    statement_rows_table,
    statements_table,
    timeline_table,
)
from services.orders.store.unit_of_work import EventEncoder, OrdersUnitOfWork

__all__ = [
    "ConcurrentChange",
    "EventEncoder",
    "OrderRepository",
    "OrdersUnitOfWork",
    "channel_payloads_table",
    "customer_assignments_table",
    "drift_reports_table",
    "metadata",
    "order_lines_table",
    "orders_table",
    "payments_table",
    "quarantine_table",
    "source_reports_table",
    "source_status_table",
    "statement_rows_table",
    "statements_table",
    "timeline_rows",
    "timeline_table",
]
