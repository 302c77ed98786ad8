"""Shipments and their tracking events on one connection. The recipient's name, phone and street are
sealed (AES-256-GCM) on the way in and opened on the way out; each column is named once, here."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.sealing import KeyRing
from services.logistics.domain.anomalies import Returns
from services.logistics.domain.model import (
    COLD_CHAIN,
    FRESH,
    ON_THE_WAY,
    Line,
    Node,
    Place,
    Priority,
    Recipient,
    Shipment,
    ShipmentStatus,
    Source,
    TrackingEvent,
    TrackingKey,
    Waybill,
)
from services.logistics.store.tables import anomalies_table, shipments_table, tracking_events_table

_ON_THE_WAY = sorted(status.value for status in ON_THE_WAY)
_RETURNS = [Node.RETURNED.value, Node.REFUSED.value]
_PICK_ORDER = (
    shipments_table.c.expedited.desc(),
    shipments_table.c.perishable.desc(),
    shipments_table.c.deadline.asc().nulls_last(),
    shipments_table.c.created_at,
    shipments_table.c.shipment_id,
)


# one shipment's changing columns, the SET clause named by the keys of each row it is executed with
_SAVE = update(shipments_table).where(shipments_table.c.shipment_id == bindparam("_id"))

# a scan, unless its shipment has it already; executed with many rows, SQLAlchemy sends them as one
# multi-row statement (its "insertmanyvalues"), compiled once, and answers the rows it stored
_ADD_EVENT = (
    insert(tracking_events_table)
    .on_conflict_do_nothing(constraint="tracking_events_once")
    .returning(
        tracking_events_table.c.shipment_id,
        tracking_events_table.c.carrier_code,
        tracking_events_table.c.occurred_at,
        tracking_events_table.c.description,
    )
)


def _place(document: dict[str, Any]) -> Place:
    return Place(
        **{
            name: str(document.get(name, ""))
            for name in ("country", "province", "city", "district", "detail")
        }
    )


def _place_document(place: Place) -> dict[str, str]:
    return {
        "country": place.country,
        "province": place.province,
        "city": place.city,
        "district": place.district,
        "detail": place.detail,
    }


def _waybill(document: dict[str, Any] | None, number: str | None) -> Waybill | None:
    if document is None or not number:
        return None
    created = document.get("created_at")
    return Waybill(
        number,
        document["carrier"],
        document.get("sorting_code", ""),
        document.get("destination_code", ""),
        document.get("label", {}),
        datetime.fromisoformat(created) if created else None,
    )


def _waybill_document(waybill: Waybill) -> dict[str, Any]:
    return {
        "carrier": waybill.carrier,
        "sorting_code": waybill.sorting_code,
        "destination_code": waybill.destination_code,
        "label": waybill.label,
        "created_at": waybill.created_at.isoformat() if waybill.created_at else None,
    }


def address_text(destination: Place, recipient: Recipient) -> str:
    """One spelling per address for its blind index: NFKC, no spaces, case folded."""
    raw = "|".join((destination.province, destination.city, destination.district, recipient.detail))
    return "".join(unicodedata.normalize("NFKC", raw).casefold().split())


def _alerted(rule: str, since: Any) -> Any:
    """The shipment was alerted on for this rule (since that time): the sweep need not ask again."""
    raised = select(anomalies_table.c.anomaly_key).where(
        anomalies_table.c.shipment_id == shipments_table.c.shipment_id, anomalies_table.c.rule == rule
    )
    if since is not None:
        raised = raised.where(anomalies_table.c.raised_at >= since)
    return raised.exists()


class ShipmentRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing | None) -> None:
        self.conn = conn
        self.keys = keys

    def _ring(self) -> KeyRing:
        if self.keys is None:
            raise RuntimeError("this unit of work was built without the PII key ring")
        return self.keys

    def _seal(self, shipment: Shipment) -> str:
        recipient = shipment.recipient
        plain = json.dumps({"name": recipient.name, "phone": recipient.phone, "detail": recipient.detail})
        return self._ring().seal(plain.encode(), f"shipment:{shipment.shipment_id}")

    def _open(self, row: Row[Any]) -> Recipient:
        document = json.loads(self._ring().open(row.recipient_sealed, f"shipment:{row.shipment_id}"))
        return Recipient(document["name"], document["phone"], document["detail"])

    def shipment(self, row: Row[Any]) -> Shipment:
        return Shipment(
            shipment_id=row.shipment_id,
            order_id=row.order_id,
            warehouse_id=row.warehouse_id,
            carrier=row.carrier,
            service=row.service,
            lines=tuple(Line(**line) for line in row.lines),
            priority=Priority(row.priority),
            deadline=row.deadline,
            destination=_place(row.destination),
            recipient=self._open(row),
            origin=_place(row.origin),
            customer_id=row.customer_id,
            channel=row.channel,
            created_at=row.created_at,
            status=ShipmentStatus(row.status),
            waybill=_waybill(row.waybill, row.waybill_no),
            pick_list_id=row.pick_list_id,
            picked_at=row.picked_at,
            packed_at=row.packed_at,
            scanned_out_at=row.scanned_out_at,
            delivered_at=row.delivered_at,
            last_node=Node(row.last_node) if row.last_node else None,
            last_node_at=row.last_node_at,
            furthest_node=Node(row.furthest_node) if row.furthest_node else None,
            exception=row.exception,
            held=row.held,
            hold_changed_at=row.hold_changed_at,
            updated_at=row.updated_at,
        )

    def _changing(self, shipment: Shipment) -> dict[str, Any]:
        """The columns a shipment's moves change."""
        waybill = shipment.waybill
        return {
            "status": shipment.status.value,
            "updated_at": shipment.updated_at or shipment.created_at,
            "pick_list_id": shipment.pick_list_id,
            "picked_at": shipment.picked_at,
            "packed_at": shipment.packed_at,
            "scanned_out_at": shipment.scanned_out_at,
            "delivered_at": shipment.delivered_at,
            "waybill_no": waybill.waybill_no if waybill else None,
            "waybill": _waybill_document(waybill) if waybill else None,
            "last_node": shipment.last_node.value if shipment.last_node else None,
            "last_node_at": shipment.last_node_at,
            "furthest_node": shipment.furthest_node.value if shipment.furthest_node else None,
            "exception": shipment.exception,
            "held": shipment.held,
            "hold_changed_at": shipment.hold_changed_at,
        }

    async def add(self, shipment: Shipment, decision_id: str) -> bool:
        row = {
            "shipment_id": shipment.shipment_id,
            "order_id": shipment.order_id,
            "warehouse_id": shipment.warehouse_id,
            "carrier": shipment.carrier,
            "service": shipment.service,
            "lines": [
                {
                    "sku": line.sku,
                    "title": line.title,
                    "quantity": line.quantity,
                    "goods_type": line.goods_type,
                }
                for line in shipment.lines
            ],
            "priority": shipment.priority.value,
            "expedited": shipment.priority is Priority.EXPEDITED,
            "perishable": shipment.goods_type in (COLD_CHAIN, FRESH),
            "deadline": shipment.deadline,
            "destination": _place_document(shipment.destination),
            "recipient_sealed": self._seal(shipment),
            "address_key": self._ring().lookup_hash(address_text(shipment.destination, shipment.recipient)),
            "origin": _place_document(shipment.origin),
            "customer_id": shipment.customer_id,
            "channel": shipment.channel,
            "decision_id": decision_id,
            "created_at": shipment.created_at,
            **self._changing(shipment),
        }
        statement = (
            insert(shipments_table)
            .values(row)
            .on_conflict_do_nothing(constraint="shipments_one_per_order_and_warehouse")
            .returning(shipments_table.c.shipment_id)
        )
        return (await self.conn.execute(statement)).first() is not None

    async def _many(self, query: Any, lock: bool) -> list[Shipment]:
        if lock:
            query = query.order_by(shipments_table.c.shipment_id).with_for_update()
        return [self.shipment(row) for row in await self.conn.execute(query)]

    async def for_order(self, order_id: str, *, lock: bool = False) -> list[Shipment]:
        query = select(shipments_table).where(shipments_table.c.order_id == order_id)
        found = await self._many(query, lock)
        return sorted(found, key=lambda s: (s.created_at, s.warehouse_id))

    async def get(self, shipment_id: str, *, lock: bool = False) -> Shipment | None:
        found = await self.get_many([shipment_id], lock=lock)
        return found[0] if found else None

    async def get_many(self, shipment_ids: Sequence[str], *, lock: bool = False) -> list[Shipment]:
        if not shipment_ids:
            return []
        query = select(shipments_table).where(shipments_table.c.shipment_id.in_(list(shipment_ids)))
        return await self._many(query, lock)

    async def by_waybill(self, waybill_no: str, *, lock: bool = False) -> Shipment | None:
        found = await self._many(
            select(shipments_table).where(shipments_table.c.waybill_no == waybill_no), lock
        )
        return found[0] if found else None

    async def for_parcels(
        self, waybill_nos: Sequence[str], shipment_ids: Sequence[str], *, lock: bool = False
    ) -> list[Shipment]:
        """The shipments with any of these waybills or ids, in one query (locked in id order, so two
        transactions naming the same parcels never wait on each other in a circle)."""
        wanted = []
        if waybill_nos:
            wanted.append(shipments_table.c.waybill_no.in_(sorted(set(waybill_nos))))
        if shipment_ids:
            wanted.append(shipments_table.c.shipment_id.in_(sorted(set(shipment_ids))))
        if not wanted:
            return []
        return await self._many(select(shipments_table).where(or_(*wanted)), lock)

    async def save(self, shipment: Shipment) -> None:
        await self.conn.execute(
            update(shipments_table)
            .where(shipments_table.c.shipment_id == shipment.shipment_id)
            .values(self._changing(shipment))
        )

    async def save_many(self, shipments: Sequence[Shipment]) -> None:
        """Each shipment's changing columns, in one statement executed for every shipment."""
        if len(shipments) <= 1:
            for shipment in shipments:
                await self.save(shipment)
            return
        rows = [{"_id": s.shipment_id, **self._changing(s)} for s in shipments]
        await self.conn.execute(_SAVE, rows)

    async def pick_tasks(self, warehouse_id: str, limit: int, *, lock: bool = False) -> list[Shipment]:
        query = (
            select(shipments_table)
            .where(
                shipments_table.c.warehouse_id == warehouse_id,
                shipments_table.c.status == ShipmentStatus.CREATED.value,
                shipments_table.c.held == "",
            )
            .order_by(*_PICK_ORDER)
            .limit(limit)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        return [self.shipment(row) for row in await self.conn.execute(query)]

    async def due_for_poll(self, now: datetime, limit: int) -> list[Shipment]:
        query = (
            select(shipments_table)
            .where(
                shipments_table.c.next_poll_at <= now,
                shipments_table.c.status.in_(_ON_THE_WAY),
                shipments_table.c.waybill_no.is_not(None),
            )
            .order_by(shipments_table.c.next_poll_at)
            .limit(limit)
        )
        return [self.shipment(row) for row in await self.conn.execute(query)]

    async def set_next_poll(self, shipment_id: str, at: datetime | None) -> None:
        await self.conn.execute(
            update(shipments_table)
            .where(shipments_table.c.shipment_id == shipment_id)
            .values(next_poll_at=at)
        )

    async def without_first_scan(self, scanned_out_before: datetime, limit: int) -> list[Shipment]:
        query = (
            select(shipments_table)
            .where(
                shipments_table.c.status == ShipmentStatus.SHIPPED.value,
                shipments_table.c.scanned_out_at <= scanned_out_before,
                shipments_table.c.furthest_node.is_(None),
                ~_alerted("no_first_scan", None),
            )
            .order_by(shipments_table.c.scanned_out_at)
            .limit(limit)
        )
        return [self.shipment(row) for row in await self.conn.execute(query)]

    async def not_updated(self, last_scan_before: datetime, limit: int) -> list[Shipment]:
        query = (
            select(shipments_table)
            .where(
                shipments_table.c.status.in_(_ON_THE_WAY),
                shipments_table.c.last_node_at <= last_scan_before,
                ~_alerted("no_update", shipments_table.c.last_node_at),
            )
            .order_by(shipments_table.c.last_node_at)
            .limit(limit)
        )
        return [self.shipment(row) for row in await self.conn.execute(query)]

    async def returns(self, shipment: Shipment, since: datetime) -> Returns:
        key = self._ring().lookup_hash(address_text(shipment.destination, shipment.recipient))
        returned = and_(
            shipments_table.c.furthest_node.in_(_RETURNS), shipments_table.c.last_node_at >= since
        )
        by_customer = func.count().filter(
            shipments_table.c.customer_id == shipment.customer_id, shipments_table.c.customer_id != ""
        )
        by_address = func.count().filter(shipments_table.c.address_key == key)
        row = (
            await self.conn.execute(
                select(by_customer, by_address).where(
                    returned,
                    or_(
                        and_(
                            shipments_table.c.customer_id == shipment.customer_id,
                            shipments_table.c.customer_id != "",
                        ),
                        shipments_table.c.address_key == key,
                    ),
                )
            )
        ).one()
        return Returns(int(row[0]), int(row[1]), key[:16])


def tracking_event(row: Row[Any]) -> TrackingEvent:
    return TrackingEvent(
        Node(row.node),
        row.carrier_code,
        row.description,
        row.area,
        row.occurred_at,
        Source(row.source),
        row.received_at,
    )


class TrackingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, shipment_id: str, event: TrackingEvent) -> bool:
        return bool(await self.add_many([(shipment_id, event)]))

    async def add_many(self, events: Sequence[tuple[str, TrackingEvent]]) -> set[TrackingKey]:
        """The scans new to their shipments are stored; their keys (shipment, carrier code, time,
        description) are answered, the repeats left out."""
        rows: dict[TrackingKey, dict[str, Any]] = {}
        for shipment_id, event in events:  # the same scan twice: stored once
            rows.setdefault(
                event.key(shipment_id),
                {
                    "shipment_id": shipment_id,
                    "node": event.node.value,
                    "carrier_code": event.carrier_code,
                    "description": event.description,
                    "area": event.area,
                    "occurred_at": event.at,
                    "source": event.source.value,
                    "received_at": event.received_at or event.at,
                },
            )
        if not rows:
            return set()
        found = await self.conn.execute(_ADD_EVENT, list(rows.values()))
        return {(r.shipment_id, r.carrier_code, r.occurred_at, r.description) for r in found}
