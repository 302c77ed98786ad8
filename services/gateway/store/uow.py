"""The gateway's unit of work: one transaction with the audit log, the webhook receipts and the alert
records on it."""

from __future__ import annotations

from services.gateway.store.alert_records import AlertRepository
from services.gateway.store.audit import AuditRepository
from services.gateway.store.receipts import ReceiptRepository
from services.kit import db


class GatewayUnitOfWork(db.UnitOfWork):
    audit: AuditRepository
    receipts: ReceiptRepository
    alerts: AlertRepository

    async def __aenter__(self) -> GatewayUnitOfWork:
        await super().__aenter__()
        self.audit = AuditRepository(self.conn)
        self.receipts = ReceiptRepository(self.conn)
        self.alerts = AlertRepository(self.conn)
        return self
