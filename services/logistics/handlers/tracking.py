"""Tracking: carrier pushes (read in the carrier's own format, or quarantined with the reason), the
poll of parcels on their way (so a lost push is caught), every node recorded once and on the order's
timeline, and the anomalies the nodes, or their absence, reveal."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.logistics.domain.anomalies import (
    Anomaly,
    AnomalyRules,
    destination_mismatch,
    is_return,
    no_first_scan,
    no_update,
    repeated_returns,
)
from services.logistics.domain.carriers import product_of, tracking_company
from services.logistics.domain.commands import TrackingPush
from services.logistics.domain.model import Shipment, Source, TrackingEvent
from services.logistics.domain.tracking import MalformedPush, PollPolicy, Scan, parse_push, push_reply
from services.logistics.handlers.ports import Carriers, TrackingAnswer, UnitOfWork
from services.logistics.handlers.shipments import emit_recorded

log = logging.getLogger(__name__)

NewUnitOfWork = Callable[[], UnitOfWork]
SF_NUMBERS_PER_QUERY = 10


@dataclass(frozen=True)
class PushTaken:
    nodes_recorded: int
    quarantine_id: str
    # what the carrier's protocol expects back: (content type, body)
    reply: tuple[str, str]


@dataclass(frozen=True)
class Recorded:
    nodes: int
    unknown: tuple[str, ...]


async def raise_anomaly(uow: UnitOfWork, anomaly: Anomaly) -> bool:
    alert = anomaly.alert()
    key = f"{anomaly.rule}:{anomaly.key}"
    if not await uow.anomalies.record(
        key, anomaly.rule, anomaly.shipment, anomaly.source.value, alert.message, uow.clock.now()
    ):
        return False
    uow.emit(alert)
    return True


async def _find(uow: UnitOfWork, scan: Scan) -> Shipment | None:
    if scan.waybill_no:
        found = await uow.shipments.by_waybill(scan.waybill_no, lock=True)
        if found is not None:
            return found
    # SF names our order id at the carrier (the shipment id): a parcel whose waybill answer was lost
    if scan.carrier_order_id:
        return await uow.shipments.get(scan.carrier_order_id, lock=True)
    return None


async def record_scans(
    uow: UnitOfWork, scans: Sequence[Scan], source: Source, rules: AnomalyRules
) -> Recorded:
    """Inside the caller's transaction: each scan new to its shipment is stored, moves the shipment (only
    forward) and is announced; scans of parcels nobody here shipped are named back."""
    now = uow.clock.now()
    by_parcel: dict[tuple[str, str], list[Scan]] = defaultdict(list)
    for scan in scans:
        by_parcel[(scan.waybill_no, scan.carrier_order_id)].append(scan)
    recorded, unknown = 0, []
    # parcels in a fixed order: two pushes naming the same parcels lock them in the same order
    for parcel in sorted(by_parcel):
        parcel_scans = by_parcel[parcel]
        shipment = await _find(uow, parcel_scans[0])
        if shipment is None:
            unknown.append(parcel[0] or parcel[1])
            continue
        returned = False
        for scan in sorted(parcel_scans, key=lambda s: s.at):
            event = TrackingEvent(
                scan.node, scan.carrier_code, scan.description, scan.area, scan.at, source, now
            )
            if not await uow.tracking.add(shipment.shipment_id, event):
                continue
            recorded += 1
            shipment.track(event)
            mismatch = destination_mismatch(shipment, event)
            if mismatch is not None:
                await raise_anomaly(uow, mismatch)
            returned = returned or is_return(event.node)
        if shipment.events:
            await uow.shipments.save(shipment)
            emit_recorded(uow, shipment)
        if returned:
            counted = await uow.shipments.returns(shipment, now - rules.returns_window)
            anomaly = repeated_returns(shipment, counted, rules, source)
            if anomaly is not None:
                await raise_anomaly(uow, anomaly)
    return Recorded(recorded, tuple(unknown))


async def report_push(uow: UnitOfWork, push: TrackingPush, rules: AnomalyRules) -> PushTaken:
    """A push the gateway verified: recorded, or kept in quarantine when it cannot be read or names no
    parcel shipped here. The carrier is answered that it was taken either way (the same body pushed
    again would fare no better)."""
    reply = push_reply(push.carrier)
    async with uow:
        now = uow.clock.now()
        try:
            scans = parse_push(push.carrier, push.body)
            recorded = await record_scans(uow, scans, Source.PUSH, rules)
        except MalformedPush as malformed:
            quarantined = await uow.quarantine.add(
                push.carrier, push.content_type, push.body, malformed.reason, now
            )
            await uow.commit()
            return PushTaken(0, quarantined, reply)
        quarantine_id = ""
        if recorded.unknown and recorded.nodes == 0:
            reason = f"no shipment has waybill {', '.join(recorded.unknown[:5])}"
            quarantine_id = await uow.quarantine.add(push.carrier, push.content_type, push.body, reason, now)
        await uow.commit()
    return PushTaken(recorded.nodes, quarantine_id, reply)


def _time_rules(shipment: Shipment, now: datetime, rules: AnomalyRules) -> list[Anomaly]:
    found = [no_first_scan(shipment, now, rules, Source.POLL), no_update(shipment, now, rules, Source.POLL)]
    return [anomaly for anomaly in found if anomaly is not None]


class TrackingPoller:
    """Asks the carriers about parcels on their way: on schedule (each parcel every 6 h by default,
    jittered), and, for the anomaly sweep, about parcels that look stalled before alerting on them."""

    def __init__(
        self,
        new_uow: NewUnitOfWork,
        carriers: Carriers,
        policy: PollPolicy,
        rules: AnomalyRules,
        *,
        batch: int = 200,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self.new_uow = new_uow
        self.carriers = carriers
        self.policy = policy
        self.rules = rules
        self.batch = batch
        self.draw = draw or random.Random().random

    async def poll_due(self) -> int:
        """One round of the poll: the parcels whose poll is due; how many were polled."""
        uow = self.new_uow()
        async with uow:
            due = await uow.shipments.due_for_poll(uow.clock.now(), self.batch)
        await self.poll(due)
        return len(due)

    async def sweep(self) -> int:
        """Parcels that look stalled (no first scan, or no update, past their threshold) are polled now,
        then alerted on if the carrier still has nothing; how many anomalies were raised."""
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            stalled = await uow.shipments.without_first_scan(now - self.rules.first_scan_within, self.batch)
            stale = await uow.shipments.not_updated(now - self.rules.update_within, self.batch)
        candidates = {s.shipment_id: s for s in [*stalled, *stale]}
        return await self.poll(list(candidates.values()))

    async def poll(self, shipments: Sequence[Shipment]) -> int:
        """Poll these parcels, record what the carriers say, schedule the next poll, and check the time
        rules on what is then known; how many anomalies were raised."""
        groups: dict[tuple[str, str], list[Shipment]] = defaultdict(list)
        for shipment in shipments:
            if shipment.waybill is not None:
                groups[(product_of(shipment.carrier).account, tracking_company(shipment.carrier))].append(
                    shipment
                )
        raised = 0
        for (account, company), members in groups.items():
            size = SF_NUMBERS_PER_QUERY if account == "sf" else 1
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                answers = await self.carriers.track(
                    account, company, [s.waybill.waybill_no for s in chunk if s.waybill]
                )
                raised += await self._record(chunk, {answer.waybill_no: answer for answer in answers})
        return raised

    async def _record(self, chunk: Sequence[Shipment], answers: dict[str, TrackingAnswer]) -> int:
        raised = 0
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            scans: list[Scan] = []
            for shipment in chunk:
                answer = answers.get(shipment.waybill.waybill_no if shipment.waybill else "")
                if answer is None or answer.error:
                    why = answer.error if answer else "no answer"
                    log.info("poll of shipment %s found nothing: %s", shipment.shipment_id, why)
                    continue
                scans.extend(answer.scans)
            await record_scans(uow, scans, Source.POLL, self.rules)
            for shipment in chunk:
                refreshed = await uow.shipments.get(shipment.shipment_id, lock=True)
                if refreshed is None:
                    continue
                await uow.shipments.set_next_poll(
                    refreshed.shipment_id, self.policy.next_poll(now, self.draw())
                )
                for anomaly in _time_rules(refreshed, now, self.rules):
                    raised += await raise_anomaly(uow, anomaly)
            await uow.commit()
        return raised
