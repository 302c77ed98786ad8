"""Decisions in plain language: one sentence per warehouse, as operations and support read them."""

from __future__ import annotations

from dataclasses import replace

from services.routing.domain.model import Decision
from services.routing.domain.rules import RuleSet


def yuan(minor: int) -> str:
    return f"¥{minor / 100:.1f}"


def explain(decision: Decision, rules: RuleSet) -> tuple[str, ...]:
    """The decision in plain language, one sentence per warehouse."""
    names = {w.warehouse_id: w.name for w in rules.warehouses}
    destination = decision.destination
    where = f"{destination.city}, {destination.province}"
    if destination.cross_border and destination.province != destination.country:
        where += f" ({destination.country})"
    lines: list[str] = []
    if decision.parked:
        lines.append(f"Parked ({decision.parked.value}): {decision.park_detail}.")
    elif decision.split:
        parts = "; ".join(
            f"{names[s.warehouse_id]} ships {', '.join(f'{q}× {sku}' for sku, q in s.lines)} by {s.carrier} "
            f"{s.service}, {s.days} day{'s' if s.days != 1 else ''}, {yuan(s.cost_minor)}"
            for s in decision.shipments
        )
        lines.append(f"Split into {len(decision.shipments)} shipments to {where}: {parts}.")
    for verdict in decision.verdicts:
        name = names.get(verdict.warehouse_id, verdict.warehouse_id)
        timing = f"{verdict.days} day{'s' if verdict.days != 1 else ''}, {yuan(verdict.cost_minor)}"
        if verdict.chosen and not decision.split:
            shipment = decision.shipments[0]
            carrier = f"{shipment.carrier} {shipment.service}"
            lines.append(f"{name} chosen: {verdict.proximity} for {where}, {timing} by {carrier}.")
        elif verdict.eligible and not verdict.chosen:
            lines.append(f"{name} lost: {timing}; {verdict.reason}.")
        elif not verdict.eligible:
            lines.append(f"{name} excluded: {verdict.reason}.")
    return tuple(lines)


def superseding(decision: Decision, refused_decision_id: str) -> Decision:
    """The decision of a replan, saying which plan it replaces and why."""
    return replace(
        decision,
        explanation=(
            *decision.explanation,
            f"replanned: decision {refused_decision_id} could not be reserved (its stock went to another "
            "order) and is superseded",
        ),
    )
