"""Routing's store: the only code that speaks SQL on the write side (tables, repositories, the unit of
work that writes the emitted events to the outbox)."""

from services.routing.store.uow import EventMessages, RoutingUnitOfWork

__all__ = ["EventMessages", "RoutingUnitOfWork"]
