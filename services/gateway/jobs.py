"""Gateway timers: the audit purge (never younger than 180 days) and the upload sweep."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.gateway.store import purge_audit
from services.gateway.uploads import UploadStore
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)


async def purge_old_audit(new_uow: Callable[[], UnitOfWork], retention: timedelta) -> int:
    uow = new_uow()
    async with uow:
        purged = await purge_audit(uow.conn, datetime.now(UTC), retention)
        await uow.commit()
    if purged:
        log.info("purged %d audit records older than %d days", purged, retention.days)
    return purged


async def sweep_uploads(uploads: UploadStore) -> int:
    return await uploads.sweep(time.time())
