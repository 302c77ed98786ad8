"""The integration events the orders service publishes: each subject (under the prefix, `oms`) and the proto
message it carries. Its event encoder (`mappers`) is checked against this table on every event
(services.kit.bus.publishes), and `omsctl contracts` writes the AsyncAPI document from it."""

PUBLISHED: dict[str, str] = {
    "orders.created": "oms.orders.v1.OrderCreated",
    "orders.updated": "oms.orders.v1.OrderUpdated",
    "orders.paid": "oms.orders.v1.OrderPaid",
    "orders.allocated": "oms.orders.v1.OrderAllocated",
    "orders.status_changed": "oms.orders.v1.OrderStatusChanged",
    "orders.cancelled": "oms.orders.v1.OrderCancelled",
    "orders.held": "oms.orders.v1.OrderHeld",
    "orders.released": "oms.orders.v1.OrderReleased",
    "orders.exception": "oms.orders.v1.OrderException",
    "orders.sla_breached": "oms.orders.v1.OrderSlaBreached",
    "orders.risk_held": "oms.orders.v1.OrderRiskHeld",
    "alerts.raised": "oms.alerts.v1.AlertRaised",
}
