"""Logistics timers: the tracking poll of parcels on their way, and the anomaly sweep (each on one
replica, on schedule). The waybill runner is the bootstrap's long-running task."""

from __future__ import annotations

import logging

from services.logistics.handlers.tracking import TrackingPoller

log = logging.getLogger(__name__)


async def poll_tracking(poller: TrackingPoller) -> int:
    polled = await poller.poll_due()
    if polled:
        log.info("polled the tracking of %d parcels", polled)
    return polled


async def sweep_anomalies(poller: TrackingPoller) -> int:
    raised = await poller.sweep()
    if raised:
        log.warning("raised %d logistics anomalies", raised)
    return raised
