"""The gateway's unit of work: one transaction with the audit log, the webhook receipts and the alert
records and the console users on it."""

from __future__ import annotations

from services.gateway.store.alert_records import AlertRepository
from services.gateway.store.audit import AuditRepository
from services.gateway.store.receipts import ReceiptRepository
from services.gateway.store.users import UserRepository
from services.kit import db


class GatewayUnitOfWork(db.UnitOfWork):
    audit: AuditRepository
    receipts: ReceiptRepository
    alerts: AlertRepository
    users: UserRepository

    async def __aenter__(self) -> GatewayUnitOfWork:
        await super().__aenter__()
        self.audit = AuditRepository(self.conn)
        self.receipts = ReceiptRepository(self.conn)
        self.alerts = AlertRepository(self.conn)
        self.users = UserRepository(self.conn)
        return self
