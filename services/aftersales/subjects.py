"""The integration events after-sales publishes: each subject (under the prefix, `oms`) and the proto
message it carries. Its event encoder (`mappers`) is checked against this table on every event
(services.kit.bus.publishes), and `omsctl contracts` writes the AsyncAPI document from it."""

PUBLISHED: dict[str, str] = {
    "aftersales.opened": "oms.aftersales.v1.TicketOpened",
    "aftersales.approved": "oms.aftersales.v1.TicketApproved",
    "aftersales.rejected": "oms.aftersales.v1.TicketRejected",
    "aftersales.escalated": "oms.aftersales.v1.TicketEscalated",
    "aftersales.return_received": "oms.aftersales.v1.ReturnReceived",
    "aftersales.refund_requested": "oms.aftersales.v1.RefundRequested",
    "aftersales.refunded": "oms.aftersales.v1.Refunded",
    "aftersales.refund_failed": "oms.aftersales.v1.RefundFailed",
    "aftersales.replacement_shipped": "oms.aftersales.v1.ReplacementShipped",
    "aftersales.closed": "oms.aftersales.v1.TicketClosed",
    "aftersales.retention_suggested": "oms.aftersales.v1.RetentionSuggested",
    "alerts.raised": "oms.alerts.v1.AlertRaised",
}
