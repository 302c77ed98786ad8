"""After-sales' store: the only SQL of the service (tables, repositories, the unit of work)."""

from services.aftersales.store.uow import AftersalesUnitOfWork, EventMessages

__all__ = ["AftersalesUnitOfWork", "EventMessages"]
