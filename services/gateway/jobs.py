"""Gateway timers: the audit purge (never younger than 180 days) and the upload sweep."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.gateway.store.uow import GatewayUnitOfWork
from services.gateway.store.uploads import UploadStore

log = logging.getLogger(__name__)


async def purge_old_audit(
    new_uow: Callable[[], GatewayUnitOfWork], retention: timedelta, wall: Callable[[], float]
) -> int:
    uow = new_uow()
    async with uow:
        purged = await uow.audit.purge(datetime.fromtimestamp(wall(), UTC), retention)
        await uow.commit()
    if purged:
        log.info("purged %d audit records older than %d days", purged, retention.days)
    return purged


async def sweep_uploads(uploads: UploadStore, wall: Callable[[], float]) -> int:
    return await uploads.sweep(wall())
