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
from enum import StrEnum

from services.kit.batching import Batcher
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
GROUP_LOCK_TIMEOUT_MS = 250


@dataclass(frozen=True)
class PushTaken:
    nodes_recorded: int
    quarantine_id: str
    # what the carrier's protocol expects back: (content type, body)
    reply: tuple[str, str]


class Outcome(StrEnum):
    """What became of one scan: new to its shipment (recorded), already known, or of no parcel here."""

    NEW = "new"
    KNOWN = "known"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Recorded:
    # per scan, in the order given
    outcomes: tuple[Outcome, ...]

    @property
    def nodes(self) -> int:
        return sum(outcome is Outcome.NEW for outcome in self.outcomes)


async def raise_anomaly(uow: UnitOfWork, anomaly: Anomaly) -> bool:
    alert = anomaly.alert()
    key = f"{anomaly.rule}:{anomaly.key}"
    if not await uow.anomalies.record(
        key, anomaly.rule, anomaly.shipment, anomaly.source.value, alert.message, uow.clock.now()
    ):
        return False
    uow.emit(alert)
    return True


def _parcel(scan: Scan) -> tuple[str, str]:
    return (scan.waybill_no, scan.carrier_order_id)


async def _find(uow: UnitOfWork, parcels: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Shipment]:
    """Each parcel's shipment, locked, in one query: by its waybill number, or by the order id SF names
    at the carrier (the shipment id: a parcel whose waybill answer was lost)."""
    found = await uow.shipments.for_parcels(
        [waybill for waybill, _ in parcels if waybill],
        [order_id for _, order_id in parcels if order_id],
        lock=True,
    )
    by_waybill = {s.waybill.waybill_no: s for s in found if s.waybill is not None}
    by_id = {s.shipment_id: s for s in found}
    shipments = {}
    for waybill, order_id in parcels:
        shipment = by_waybill.get(waybill) if waybill else None
        if shipment is None and order_id:
            shipment = by_id.get(order_id)
        if shipment is not None:
            shipments[(waybill, order_id)] = shipment
    return shipments


async def record_scans(
    uow: UnitOfWork, scans: Sequence[Scan], source: Source, rules: AnomalyRules
) -> Recorded:
    """Inside the caller's transaction: each scan new to its shipment is stored, moves the shipment (only
    forward) and is announced; what became of each scan is answered. However many scans and parcels,
    the shipments are read in one statement, the scans stored in one and the shipments saved in one."""
    now = uow.clock.now()
    outcomes = [Outcome.UNKNOWN] * len(scans)
    by_parcel: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, scan in enumerate(scans):
        by_parcel[_parcel(scan)].append(index)
    shipments = await _find(uow, sorted(by_parcel))
    # each parcel's scans in the order they happened: a shipment moves through them as they were made
    events: list[tuple[int, Shipment, TrackingEvent]] = []
    for parcel in sorted(by_parcel):
        shipment = shipments.get(parcel)
        if shipment is None:
            continue
        for index in sorted(by_parcel[parcel], key=lambda i: scans[i].at):
            scan = scans[index]
            event = TrackingEvent(
                scan.node, scan.carrier_code, scan.description, scan.area, scan.at, source, now
            )
            events.append((index, shipment, event))
    stored = await uow.tracking.add_many([(shipment.shipment_id, event) for _, shipment, event in events])
    moved: dict[str, Shipment] = {}
    returned: set[str] = set()
    for index, shipment, event in events:
        key = event.key(shipment.shipment_id)
        if key not in stored:
            outcomes[index] = Outcome.KNOWN
            continue
        stored.discard(key)  # the same scan twice in this call: the first one counts
        outcomes[index] = Outcome.NEW
        shipment.track(event)
        moved[shipment.shipment_id] = shipment
        mismatch = destination_mismatch(shipment, event)
        if mismatch is not None:
            await raise_anomaly(uow, mismatch)
        if is_return(event.node):
            returned.add(shipment.shipment_id)
    await uow.shipments.save_many(list(moved.values()))
    for shipment in moved.values():
        emit_recorded(uow, shipment)
    for shipment_id in sorted(returned):
        shipment = moved[shipment_id]
        counted = await uow.shipments.returns(shipment, now - rules.returns_window)
        anomaly = repeated_returns(shipment, counted, rules, source)
        if anomaly is not None:
            await raise_anomaly(uow, anomaly)
    return Recorded(tuple(outcomes))


async def report_push(uow: UnitOfWork, push: TrackingPush, rules: AnomalyRules) -> PushTaken:
    """A push the gateway verified: recorded, or kept in quarantine when it cannot be read or names no
    parcel shipped here. The carrier is answered that it was taken either way (the same body pushed
    again would fare no better)."""
    return (await report_pushes(uow, [push], rules))[0]


async def report_pushes(
    uow: UnitOfWork,
    pushes: Sequence[TrackingPush],
    rules: AnomalyRules,
    lock_timeout_ms: int | None = None,
) -> list[PushTaken]:
    """Several pushes in one transaction, each answered as `report_push` would answer it alone; with
    `lock_timeout_ms`, a shipment held by another transaction for longer fails them all."""
    async with uow:
        if lock_timeout_ms is not None:
            await uow.lock_timeout(lock_timeout_ms)
        now = uow.clock.now()
        readings: list[list[Scan] | MalformedPush] = []
        scans: list[Scan] = []
        for push in pushes:
            try:
                read = parse_push(push.carrier, push.body)
            except MalformedPush as malformed:
                readings.append(malformed)
                continue
            readings.append(read)
            scans.extend(read)
        outcomes = iter((await record_scans(uow, scans, Source.PUSH, rules)).outcomes)
        taken = []
        for push, reading in zip(pushes, readings, strict=True):
            reply = push_reply(push.carrier)
            if isinstance(reading, MalformedPush):
                quarantined = await uow.quarantine.add(
                    push.carrier, push.content_type, push.body, reading.reason, now
                )
                taken.append(PushTaken(0, quarantined, reply))
                continue
            mine = [next(outcomes) for _ in reading]
            nodes = sum(outcome is Outcome.NEW for outcome in mine)
            unknown = sorted(
                {
                    scan.waybill_no or scan.carrier_order_id
                    for scan, outcome in zip(reading, mine, strict=True)
                    if outcome is Outcome.UNKNOWN
                }
            )
            quarantine_id = ""
            if unknown and nodes == 0:
                reason = f"no shipment has waybill {', '.join(unknown[:5])}"
                quarantine_id = await uow.quarantine.add(
                    push.carrier, push.content_type, push.body, reason, now
                )
            taken.append(PushTaken(nodes, quarantine_id, reply))
        await uow.commit()
    return taken


class PushDesk:
    """Where the carriers' pushes are taken: the pushes that arrive while earlier ones are being
    written go together in one transaction (a group commit, `kit.batching`), each answered for itself.
    A group waits at most `GROUP_LOCK_TIMEOUT_MS` for a shipment another transaction holds. If its
    transaction fails as a whole (that wait, say), each of its pushes is taken alone, outside the
    desk and with no such limit: one push's trouble is only its own, and one held shipment never
    stalls the pushes queued behind it."""

    def __init__(
        self, new_uow: NewUnitOfWork, rules: AnomalyRules, *, writers: int = 2, max_batch: int = 64
    ) -> None:
        self.new_uow = new_uow
        self.rules = rules
        self._batcher: Batcher[TrackingPush, PushTaken | None] = Batcher(
            self._together, linger=0, max_batch=max_batch, in_flight=writers
        )

    @property
    def batches(self) -> int:
        """How many transactions took pushes together (for the tests and the benchmark)."""
        return self._batcher.batches

    async def take(self, push: TrackingPush) -> PushTaken:
        taken = await self._batcher.submit(push)
        if taken is not None:
            return taken
        return await report_push(self.new_uow(), push, self.rules)

    async def _together(self, pushes: list[TrackingPush]) -> list[PushTaken | BaseException | None]:
        try:
            return list(await report_pushes(self.new_uow(), pushes, self.rules, GROUP_LOCK_TIMEOUT_MS))
        except Exception:
            log.warning("%d pushes failed together; each is taken alone", len(pushes), exc_info=True)
            return [None] * len(pushes)


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
