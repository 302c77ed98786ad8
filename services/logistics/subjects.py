"""The integration events logistics publishes: each subject (under the prefix, `oms`) and the proto
message it carries. Its event encoder (`mappers`) is checked against this table on every event
(services.kit.bus.publishes), and `omsctl contracts` writes the AsyncAPI document from it."""

PUBLISHED: dict[str, str] = {
    "logistics.shipment_created": "oms.logistics.v1.ShipmentCreated",
    "logistics.waybill_created": "oms.logistics.v1.WaybillCreated",
    "logistics.waybill_failed": "oms.logistics.v1.WaybillFailed",
    "logistics.picked": "oms.logistics.v1.ShipmentPicked",
    "logistics.packed": "oms.logistics.v1.ShipmentPacked",
    "logistics.scanned_out": "oms.logistics.v1.ShipmentScannedOut",
    "logistics.tracking_updated": "oms.logistics.v1.TrackingUpdated",
    "logistics.delivered": "oms.logistics.v1.ShipmentDelivered",
    "logistics.exception": "oms.logistics.v1.ShipmentException",
    "logistics.returned": "oms.logistics.v1.ShipmentReturned",
    "alerts.raised": "oms.alerts.v1.AlertRaised",
}
