"""The after-sales service: tickets (refund only, return and refund, exchange), refunds to the cent
through the order's original payment provider, auto-approval rule sets, SLA escalation, retention."""
