"""Decisions as logged: the inputs a decision was made from (so it can be replayed) and what it decided,
as JSON documents; the parked order's request is the inputs' request."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from services.routing.domain.commands import PlanCommand
from services.routing.domain.geography import Place, normalise
from services.routing.domain.model import Decision, ParkReason, RouteLine, RouteRequest, Shipment, Verdict


def request_document(request: RouteRequest) -> dict[str, Any]:
    return {
        "order_id": request.order_id,
        "country": request.destination.country,
        "province": request.destination.province,
        "city": request.destination.city,
        "lines": [asdict(line) for line in request.lines],
        "priority": request.priority,
    }


def inputs_document(
    request: RouteRequest, stock: dict[tuple[str, str], int], load: dict[str, int]
) -> dict[str, Any]:
    return {
        "request": request_document(request),
        "stock": sorted([sku, warehouse, units] for (sku, warehouse), units in stock.items()),
        "load": load,
    }


def request_from_inputs(inputs: dict[str, Any]) -> RouteRequest:
    raw = inputs["request"]
    return RouteRequest(
        raw["order_id"],
        normalise(raw["province"], raw["city"], country=raw.get("country", "CN")),
        tuple(RouteLine(**line) for line in raw["lines"]),
        raw["priority"],
    )


def stock_from_inputs(inputs: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(sku, warehouse): units for sku, warehouse, units in inputs["stock"]}


def command_from_request(raw: dict[str, Any]) -> PlanCommand:
    """A parked order's request, to plan it again."""
    return PlanCommand(
        raw["order_id"],
        raw["province"],
        raw["city"],
        tuple(RouteLine(**line) for line in raw["lines"]),
        raw["priority"],
        raw.get("country", "CN"),
    )


def result_document(decision: Decision) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(asdict(decision), ensure_ascii=False))
    return document


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` a document holds: an older log lacks the newer ones (they take defaults)."""
    return {f.name: raw[f.name] for f in fields(cls) if f.name in raw}


def decision_from_document(raw: dict[str, Any]) -> Decision:
    """A logged result back as the decision it records."""
    values = _known(Decision, raw)
    values["destination"] = Place(**_known(Place, raw["destination"]))
    values["shipments"] = tuple(
        Shipment(**{**_known(Shipment, s), "lines": tuple((sku, qty) for sku, qty in s["lines"])})
        for s in raw["shipments"]
    )
    values["verdicts"] = tuple(Verdict(**_known(Verdict, v)) for v in raw["verdicts"])
    values["parked"] = ParkReason(raw["parked"]) if raw.get("parked") else None
    values["explanation"] = tuple(raw.get("explanation", ()))
    return Decision(**values)
