"""The gateway's business counters (beside the kit's RPC, outbox and consumer figures): counted by its
consumers where a fact arrives, never in the domain."""

from __future__ import annotations

from prometheus_client import Counter

ALERTS = Counter(
    "oms_alerts_raised",
    "Alerts raised by any service (oms.alerts.raised) as the gateway records them, by kind and severity "
    "(1 low … 4 critical); repeats folded into an open record count too",
    ["kind", "severity"],
)


def count_alert(kind: str, severity: int) -> None:
    ALERTS.labels(kind or "unknown", str(severity)).inc()
