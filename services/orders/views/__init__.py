"""The orders read side: lists, exports, the dashboard, timelines, drift, quarantine and dead letters.

SQL is allowed here: these queries only read (and keep the daily drift report); every write of an
order goes through the handlers and the store.
"""

from services.orders.domain.orchestration import Stored
from services.orders.views.drift import MAX_DRIFT_LIMIT, Drift, DriftReport, drift_report, save_drift_report
from services.orders.views.lists import (
    HIDDEN_PAYLOAD,
    UNREADABLE_PAYLOAD,
    DeadLetterRow,
    QuarantineRow,
    list_dead_letters,
    list_payments,
    list_quarantine,
)
from services.orders.views.orders import OrderFilter, export_orders, list_orders
from services.orders.views.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from services.orders.views.risk import risk_reviews
from services.orders.views.sla import TimerRow, sla_timers
from services.orders.views.stats import (
    DEFINITIONS,
    STAGES,
    OrderStats,
    StageDuration,
    StatusStats,
    order_stats,
)
from services.orders.views.timeline import TimelineRow, timeline

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFINITIONS",
    "HIDDEN_PAYLOAD",
    "MAX_DRIFT_LIMIT",
    "MAX_PAGE_SIZE",
    "STAGES",
    "UNREADABLE_PAYLOAD",
    "DeadLetterRow",
    "Drift",
    "DriftReport",
    "OrderFilter",
    "OrderStats",
    "QuarantineRow",
    "StageDuration",
    "StatusStats",
    "Stored",
    "TimelineRow",
    "TimerRow",
    "drift_report",
    "export_orders",
    "list_dead_letters",
    "list_orders",
    "list_payments",
    "list_quarantine",
    "order_stats",
    "risk_reviews",
    "save_drift_report",
    "sla_timers",
    "timeline",
]
