"""What logistics' events do to orders: each shipment's progress moves its order forward (never back).
Each runs in the consumer's inbox transaction (a joined unit of work), so an event is handled once."""

from __future__ import annotations

from collections.abc import Sequence

from services.orders.domain.orchestration import Stored
from services.orders.domain.shipping import LOGISTICS_SOURCE, ShipmentReport, logistics_word
from services.orders.domain.timeline import Actor
from services.orders.handlers.common import Changes, Policy, apply_per_order, save_order
from services.orders.handlers.ports import UnitOfWork

LOGISTICS = Actor.service("logistics")


async def shipment_reported(uow: UnitOfWork, policy: Policy, report: ShipmentReport) -> Changes:
    """A shipment was picked, packed, waybilled, scanned out, tracked, delivered, had a problem or came
    back: its order records it and follows (SHIPPED only with the waybill and the scan-out of every
    shipment). A report that tells nothing new (late, repeated) writes nothing; an order this service
    does not hold is not ours to follow."""
    return await shipments_reported(uow, policy, [report], [""])


async def shipments_reported(
    uow: UnitOfWork, policy: Policy, reports: Sequence[ShipmentReport], traceparents: Sequence[str]
) -> Changes:
    """Shipment reports in the order logistics published them (`traceparents[i]`: the trace of
    `reports[i]`, empty for the current one): each order is read once and written once per run of its
    reports from one trace (`apply_per_order`)."""
    changes = Changes()

    async def apply(stored: Stored, report: ShipmentReport) -> bool:
        now = uow.clock.now()
        before = logistics_word(stored.order.shipments)
        if not stored.order.report_shipment(report, now):
            return False
        # logistics' word on the order, for the drift report, when it changed (a tracking node on the
        # way changes nothing; a pick, a scan-out or a delivery does, even where the order did not follow)
        after = logistics_word(stored.order.shipments)
        if after is not None and (before is None or after.raw_status != before.raw_status):
            await uow.sources.observed(report.order_id, LOGISTICS_SOURCE, after, report.at or now, now)
        return True

    async def write(stored: Stored) -> None:
        await save_order(uow, stored, LOGISTICS, "logistics", changes)

    await apply_per_order(uow, reports, traceparents, lambda report: report.order_id, apply, write)
    return changes
