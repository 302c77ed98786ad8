"""The warehouses' dispatch docks: who and where the sender on a parcel's label is.

A shipment's sender is its warehouse's dock, as the logistics service's directory knows it
(`docks.yaml`, or the file `LOGISTICS_DOCKS_FILE` names), unless the caller's plan names the origin
itself. The dock is a team's name and a desk phone, no one's personal data. A warehouse the directory
does not know ships with what the plan gave (and its id as the sender's name), so a new warehouse is
never blocked by a missing entry (docs/logistics.md says how to add one). Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.logistics.domain.model import Place

_PLACE_KEYS = ("country", "province", "city", "district", "detail")
_KEYS = frozenset({"name", "phone", *_PLACE_KEYS})


class InvalidDocks(ValueError):
    """The dock directory is not usable; the message names the warehouse and the key."""


@dataclass(frozen=True)
class Dock:
    warehouse_id: str
    name: str
    phone: str
    place: Place


@dataclass(frozen=True)
class Docks:
    by_warehouse: Mapping[str, Dock] = field(default_factory=dict)

    def origin(self, warehouse_id: str, planned: Place) -> Place:
        """Where the parcel starts: the plan's origin when it names one, else the warehouse's dock."""
        if planned.province or planned.city or planned.detail:
            return planned
        dock = self.by_warehouse.get(warehouse_id)
        return dock.place if dock is not None else planned

    def sender(self, warehouse_id: str) -> tuple[str, str]:
        """The sender's name and phone on the label (the warehouse's id and no phone when unknown)."""
        dock = self.by_warehouse.get(warehouse_id)
        return (dock.name, dock.phone) if dock is not None else (warehouse_id, "")


def parse(document: Any) -> Docks:
    """The directory from its YAML document: `warehouses: {WH-SH: {name, phone, province, city,
    district, detail, country}}`."""
    if not isinstance(document, Mapping) or set(document) - {"warehouses"}:
        raise InvalidDocks("the document must be a mapping with one key, `warehouses`")
    warehouses = document.get("warehouses") or {}
    if not isinstance(warehouses, Mapping):
        raise InvalidDocks("`warehouses` must map warehouse ids to their docks")
    docks: dict[str, Dock] = {}
    for warehouse_id, entry in warehouses.items():
        where = f"warehouses.{warehouse_id}"
        if not isinstance(warehouse_id, str) or not warehouse_id.strip():
            raise InvalidDocks(f"{where}: a warehouse id must be a non-empty string")
        if not isinstance(entry, Mapping):
            raise InvalidDocks(f"{where}: must be a mapping of {', '.join(sorted(_KEYS))}")
        unknown = set(entry) - _KEYS
        if unknown:
            raise InvalidDocks(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
        values = {key: entry.get(key, "") for key in _KEYS}
        for key, value in values.items():
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidDocks(f"{where}.{key}: must be text")
            values[key] = str(value).strip()
        for key in ("name", "province", "city", "detail"):
            if not values[key]:
                raise InvalidDocks(f"{where}.{key}: is required (it is printed on every label)")
        place = Place(
            values["country"].upper() or "CN",
            values["province"],
            values["city"],
            values["district"],
            values["detail"],
        )
        docks[warehouse_id.strip()] = Dock(warehouse_id.strip(), values["name"], values["phone"], place)
    return Docks(docks)
