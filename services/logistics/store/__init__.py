"""Logistics' store: the only code that speaks SQL on the write side (tables, repositories, the unit of
work that writes the emitted events to the outbox)."""

from services.logistics.store.uow import EventMessages, LogisticsUnitOfWork

__all__ = ["EventMessages", "LogisticsUnitOfWork"]
