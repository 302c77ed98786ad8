"""Every proto ↔ domain conversion of routing: requests to commands, domain objects to replies, domain
events to the proto events the outbox publishes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.common.v1 import common_pb2
from oms.routing.v1 import events_pb2
from oms.routing.v1 import routing_pb2 as pb
from services.kit import bus, status
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp as kit_timestamp
from services.routing import subjects
from services.routing.domain.commands import PlanCommand
from services.routing.domain.events import (
    AlertRaised,
    Event,
    FulfilmentPlanned,
    OrderParked,
    RuleSetActivated,
)
from services.routing.domain.geography import normalise
from services.routing.domain.model import (
    DEFAULT_UNIT_WEIGHT_G,
    ParkedOrder,
    RecordedDecision,
    RouteLine,
    Shipment,
    Verdict,
)
from services.routing.domain.regression import ChangedDecision, DryRun, ExpectedDecision
from services.routing.domain.rules import RuleSetVersion

REFUSED_DECISION_ID_LENGTH = 64


def timestamp(at: datetime | None) -> Timestamp | None:
    return None if at is None else kit_timestamp(at)


def money(minor: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=minor)


# ---- requests → commands and domain values


def route_lines(lines: Iterable[pb.RouteLine]) -> tuple[RouteLine, ...]:
    return tuple(
        RouteLine(
            sku=line.sku,
            quantity=line.quantity,
            unit_weight_g=line.unit_weight_g or DEFAULT_UNIT_WEIGHT_G,
            goods_type=line.goods_type or "normal",
            unit_value_minor=line.unit_value_minor,
        )
        for line in lines
    )


def priority(value: int) -> str:
    if value not in pb.Priority.values():
        raise InvalidArgument("priority", "must be a Priority")
    if value == pb.PRIORITY_UNSPECIFIED:
        return "standard"
    return pb.Priority.Name(value).removeprefix("PRIORITY_").lower()


def item_error(error: Exception) -> common_pb2.ItemError:
    return status.item_error(error, common_pb2.ItemError, common_pb2.FieldViolation)  # type: ignore[no-any-return]


def plan_command(request: pb.PlanFulfilmentRequest) -> PlanCommand:
    if not request.HasField("address"):
        raise InvalidArgument("address", "is required")
    return PlanCommand(
        request.order_id,
        request.address.province,
        request.address.city,
        route_lines(request.lines),
        priority(request.priority),
        request.address.country_code,
        request.refused_decision_id[:REFUSED_DECISION_ID_LENGTH],
    )


def expected_decisions(request: pb.PutExpectedDecisionsRequest) -> list[ExpectedDecision]:
    return [
        ExpectedDecision(
            case.name,
            normalise(case.province, case.city, f"cases[{index}]", case.country_code),
            route_lines(case.lines),
            case.expect_warehouse_id,
            case.expect_carrier,
        )
        for index, case in enumerate(request.cases)
    ]


# ---- domain → replies


def shipment(value: Shipment) -> pb.Shipment:
    return pb.Shipment(
        warehouse_id=value.warehouse_id,
        lines=[pb.RouteLine(sku=sku, quantity=quantity) for sku, quantity in value.lines],
        carrier=value.carrier,
        service=value.service,
        cost=money(value.cost_minor),
        days=value.days,
    )


def candidate(verdict: Verdict) -> pb.Candidate:
    return pb.Candidate(
        warehouse_id=verdict.warehouse_id,
        eligible=verdict.eligible,
        chosen=verdict.chosen,
        proximity=verdict.proximity,
        cost=money(verdict.cost_minor),
        days=verdict.days,
        score=verdict.score,
        reason=verdict.reason,
    )


def decision(recorded: RecordedDecision) -> pb.Decision:
    value = recorded.decision
    return pb.Decision(
        decision_id=recorded.decision_id,
        order_id=value.order_id,
        rule_set_version=value.ruleset_version,
        country_code=value.destination.country,
        province=value.destination.province,
        city=value.destination.city,
        shipments=[shipment(s) for s in value.shipments],
        candidates=[candidate(v) for v in value.verdicts],
        parked_reason=value.parked.value if value.parked else "",
        parked_detail=value.park_detail,
        explanation=value.explanation,
        decided_at=timestamp(recorded.decided_at),
    )


def rule_set(value: RuleSetVersion) -> pb.RuleSet:
    return pb.RuleSet(
        version=value.version,
        status=value.status.value,
        document_json=json.dumps(value.document, ensure_ascii=False),
        note=value.note,
        created_at=timestamp(value.created_at),
        activated_at=timestamp(value.activated_at),
    )


def changed_decision(value: ChangedDecision) -> pb.ChangedDecision:
    return pb.ChangedDecision(
        order_id=value.order_id,
        before_warehouse_ids=value.before_warehouses,
        after_warehouse_ids=value.after_warehouses,
        before_parked_reason=value.before_parked,
        after_parked_reason=value.after_parked,
    )


def dry_run(result: DryRun) -> pb.DryRunRuleSetResponse:
    return pb.DryRunRuleSetResponse(
        passed=result.passed,
        cases=[
            pb.CaseResult(
                name=case.case.name,
                passed=case.passed,
                actual_warehouse_ids=case.actual_warehouses,
                actual_carriers=case.actual_carriers,
                detail=case.detail,
            )
            for case in result.cases
        ],
        decisions_replayed=result.replayed,
        changed=[changed_decision(c) for c in result.changed],
    )


def parked_order(value: ParkedOrder) -> pb.ParkedOrder:
    return pb.ParkedOrder(
        order_id=value.order_id,
        reason=value.reason.value,
        detail=value.detail,
        parked_at=timestamp(value.parked_at),
        attempts=value.attempts,
    )


# ---- domain events → integration events


@bus.publishes(subjects.PUBLISHED)
def event_message(event: Event) -> tuple[str, Message]:
    """The subject and proto message an event is published as."""
    match event:
        case FulfilmentPlanned():
            return "routing.planned", events_pb2.FulfilmentPlanned(
                order_id=event.order_id,
                decision_id=event.decision_id,
                rule_set_version=event.rule_set_version,
                shipments=[shipment(s) for s in event.shipments],
            )
        case OrderParked():
            return "routing.parked", events_pb2.OrderParked(
                order_id=event.order_id,
                decision_id=event.decision_id,
                reason=event.reason.value,
                detail=event.detail,
            )
        case RuleSetActivated():
            return "routing.rules_activated", events_pb2.RuleSetActivated(
                version=event.version, previous_version=event.previous_version
            )
        case AlertRaised():
            return "alerts.raised", alerts_pb.AlertRaised(
                kind=event.kind,
                severity=event.severity,  # type: ignore[arg-type]
                source="routing",
                order_id=event.order_id,
                message=event.message,
                dedupe_key=event.dedupe_key,
            )
