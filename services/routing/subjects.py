"""The integration events routing publishes: each subject (under the prefix, `oms`) and the proto
message it carries. Its event encoder (`mappers`) is checked against this table on every event
(services.kit.bus.publishes), and `omsctl contracts` writes the AsyncAPI document from it."""

PUBLISHED: dict[str, str] = {
    "routing.planned": "oms.routing.v1.FulfilmentPlanned",
    "routing.parked": "oms.routing.v1.OrderParked",
    "routing.rules_activated": "oms.routing.v1.RuleSetActivated",
    "alerts.raised": "oms.alerts.v1.AlertRaised",
}
