"""The integration events inventory publishes: each subject (under the prefix, `oms`) and the proto
message it carries. Its event encoder (`mappers`) is checked against this table on every event
(services.kit.bus.publishes), and `omsctl contracts` writes the AsyncAPI document from it."""

PUBLISHED: dict[str, str] = {
    "inventory.sku_updated": "oms.inventory.v1.SkuUpdated",
    "inventory.reserved": "oms.inventory.v1.StockReserved",
    "inventory.committed": "oms.inventory.v1.ReservationCommitted",
    "inventory.released": "oms.inventory.v1.ReservationReleased",
    "inventory.reservation_expired": "oms.inventory.v1.ReservationExpired",
    "inventory.adjusted": "oms.inventory.v1.StockAdjusted",
    "inventory.low_stock": "oms.inventory.v1.LowStock",
    "inventory.back_in_stock": "oms.inventory.v1.BackInStock",
    "inventory.invariant_breached": "oms.inventory.v1.InvariantBreached",
    "alerts.raised": "oms.alerts.v1.AlertRaised",
}
