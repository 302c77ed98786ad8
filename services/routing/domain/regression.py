"""Checking a rule set before it acts: expected decisions it must keep, past decisions replayed with it,
and what a shadow rule set would have decided instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.routing.domain.decision_log import request_from_inputs, stock_from_inputs
from services.routing.domain.geography import Place
from services.routing.domain.model import Decision, RouteLine, RouteRequest
from services.routing.domain.planner import plan
from services.routing.domain.rules import RuleSet

AMPLE = 1_000_000
# past decisions a dry run replays when the caller does not say
DEFAULT_REPLAYED = 100


@dataclass(frozen=True)
class ExpectedDecision:
    """A case a rule set must keep deciding the same way, e.g. "Hangzhou, 1 × SKU X → Shanghai"."""

    name: str
    destination: Place
    lines: tuple[RouteLine, ...]
    expect_warehouse: str = ""
    expect_carrier: str = ""
    stock: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class CaseResult:
    case: ExpectedDecision
    passed: bool
    actual_warehouses: tuple[str, ...]
    actual_carriers: tuple[str, ...]
    detail: str


def check_expected(rules: RuleSet, case: ExpectedDecision) -> CaseResult:
    """Plan the case with its own stock (default: plenty everywhere) and compare with what is expected."""
    stock: dict[tuple[str, str], int] = {(sku, w): qty for sku, w, qty in case.stock}
    if not case.stock:
        stock = {(line.sku, w.warehouse_id): AMPLE for line in case.lines for w in rules.warehouses}
    decision = plan(RouteRequest(f"dry-run:{case.name}", case.destination, case.lines), rules, stock, {})
    warehouses = tuple(s.warehouse_id for s in decision.shipments)
    carriers = tuple(s.carrier for s in decision.shipments)
    problems = []
    if case.expect_warehouse and warehouses != (case.expect_warehouse,):
        problems.append(f"expected {case.expect_warehouse}, got {', '.join(warehouses) or 'parked'}")
    if case.expect_carrier and carriers != (case.expect_carrier,):
        problems.append(f"expected carrier {case.expect_carrier}, got {', '.join(carriers) or 'none'}")
    detail = "; ".join(problems) or " ".join(decision.explanation[:1])
    return CaseResult(case, not problems, warehouses, carriers, detail)


def replay(inputs: dict[str, Any], rules: RuleSet) -> Decision:
    """Decide again from a logged decision's inputs: with its own rule set this reproduces the decision."""
    return plan(request_from_inputs(inputs), rules, stock_from_inputs(inputs), inputs["load"])


@dataclass(frozen=True)
class ChangedDecision:
    """An order another rule set routes elsewhere (or parks, or no longer parks)."""

    order_id: str
    before_warehouses: tuple[str, ...]
    after_warehouses: tuple[str, ...]
    before_parked: str
    after_parked: str


def compare(order_id: str, before: Decision, after: Decision) -> ChangedDecision:
    return ChangedDecision(
        order_id,
        tuple(s.warehouse_id for s in before.shipments),
        tuple(s.warehouse_id for s in after.shipments),
        before.parked or "",
        after.parked or "",
    )


def change(order_id: str, before: Decision, after: Decision) -> ChangedDecision | None:
    """How the warehouses or the park differ between two decisions for one order; None if they do not."""
    compared = compare(order_id, before, after)
    if compared.before_warehouses == compared.after_warehouses and before.parked == after.parked:
        return None
    return compared


def same_outcome(a: Decision, b: Decision) -> bool:
    """The same park, or the same shipments (warehouse, carrier, lines): what a shadow report compares."""
    return _outcome(a) == _outcome(b)


def _outcome(decision: Decision) -> tuple[Any, ...]:
    return (decision.parked, tuple((s.warehouse_id, s.carrier, s.lines) for s in decision.shipments))


@dataclass(frozen=True)
class DryRun:
    cases: list[CaseResult]
    replayed: int
    changed: list[ChangedDecision]

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)

    @property
    def failed(self) -> list[CaseResult]:
        return [case for case in self.cases if not case.passed]


@dataclass(frozen=True)
class PastDecision:
    """A logged decision as a dry run replays it: the inputs it was made from and what it decided."""

    order_id: str
    inputs: dict[str, Any]
    decision: Decision


def dry_run(rules: RuleSet, cases: Sequence[ExpectedDecision], recent: Sequence[PastDecision]) -> DryRun:
    """The expected decisions checked, and the recent decisions replayed: which would change, and how."""
    changed = [
        found
        for past in recent
        if (found := change(past.order_id, past.decision, replay(past.inputs, rules))) is not None
    ]
    return DryRun([check_expected(rules, case) for case in cases], len(recent), changed)
