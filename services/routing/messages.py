"""Routing values → protobuf messages, in one place."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from oms.common.v1 import common_pb2
from oms.routing.v1 import routing_pb2 as pb
from services.kit.timestamps import timestamp as kit_timestamp


def timestamp(at: datetime | None) -> Timestamp | None:
    return None if at is None else kit_timestamp(at)


def money(minor: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=minor)


def shipment(raw: dict[str, Any]) -> pb.Shipment:
    return pb.Shipment(
        warehouse_id=raw["warehouse_id"],
        lines=[pb.RouteLine(sku=sku, quantity=quantity) for sku, quantity in raw["lines"]],
        carrier=raw["carrier"],
        service=raw["service"],
        cost=money(raw["cost_minor"]),
        days=raw["days"],
    )


def decision(stored: Any) -> pb.Decision:
    result = stored.result
    return pb.Decision(
        decision_id=stored.decision_id,
        order_id=stored.order_id,
        rule_set_version=stored.rule_set_version,
        country_code=result["destination"].get("country", "CN"),
        province=result["destination"]["province"],
        city=result["destination"]["city"],
        shipments=[shipment(s) for s in result["shipments"]],
        candidates=[
            pb.Candidate(
                warehouse_id=v["warehouse_id"],
                eligible=v["eligible"],
                chosen=v["chosen"],
                proximity=v["proximity"],
                cost=money(v["cost_minor"]),
                days=v["days"],
                score=v["score"],
                reason=v["reason"],
            )
            for v in result["verdicts"]
        ],
        parked_reason=result["parked"] or "",
        parked_detail=result["park_detail"],
        explanation=result["explanation"],
        decided_at=timestamp(stored.decided_at),
    )


def rule_set(row: Any) -> pb.RuleSet:
    return pb.RuleSet(
        version=row.version,
        status=row.status,
        document_json=json.dumps(row.document, ensure_ascii=False),
        note=row.note,
        created_at=timestamp(row.created_at),
        activated_at=timestamp(row.activated_at),
    )


def dry_run(result: Any) -> pb.DryRunRuleSetResponse:
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
        changed=result.changed,
    )
