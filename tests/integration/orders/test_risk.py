"""The risk rules on a real Postgres through the orders API: a velocity pattern freezes the 5th order,
the reviewer releases it, and the rule's statistics count the false positive; rule sets are drafted,
dry-run over the last orders' recorded facts, and activated."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from services.orders import handlers
from services.orders.domain import risk
from tests.conftest import random_ref
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import canonical

PHONE = "13800138000"


def to(district: str, phone: str = PHONE, detail: str = "1 Renmin Road") -> common_pb2.Address:
    return common_pb2.Address(
        recipient_name="王五",
        phone=phone,
        country_code="CN",
        province="Guangdong",
        city="Shenzhen",
        district=district,
        detail=detail,
    )


async def order_to(stack: Stack, address: common_pb2.Address) -> orders_pb2.Order:
    request = canonical(random_ref("own"))
    request.shipping_address.CopyFrom(address)
    return (await stack.orders.IngestOrder(request)).order


async def burst(stack: Stack, phone: str) -> list[orders_pb2.Order]:
    districts = ["Futian", "Nanshan", "Luohu", "Bao'an", "Longgang"]
    return [await order_to(stack, to(district, phone)) for district in districts]


async def test_the_fifth_order_of_a_velocity_burst_is_frozen_and_the_reviewer_releases_it(
    stack: Stack,
) -> None:
    orders = await burst(stack, PHONE)
    assert [o.status for o in orders[:4]] == [orders_pb2.ORDER_STATUS_PENDING_PAYMENT] * 4
    fifth = orders[4]
    assert fifth.status == orders_pb2.ORDER_STATUS_ON_HOLD
    assert "risk score 90" in fifth.status_reason

    evaluation = (
        await stack.orders.GetRiskEvaluation(orders_pb2.GetRiskEvaluationRequest(order_id=fifth.order_id))
    ).evaluation
    assert (evaluation.outcome, evaluation.score, evaluation.frozen) == ("held", 90, True)
    velocity = next(r for r in evaluation.results if r.rule_id == "velocity")
    assert velocity.hit and dict(velocity.seen) == {"phone_orders_1h": 5.0, "phone_addresses_1h": 5.0}
    queue = await stack.orders.ListRiskReviews(orders_pb2.ListRiskReviewsRequest())
    assert [e.order_id for e in queue.evaluations] == [fifth.order_id]
    subjects = await stack.column(
        "SELECT subject FROM outbox WHERE subject IN ('orders.risk_held', 'alerts.raised') "
        "AND payload LIKE :p",
        p=f"%{fifth.order_id}%".encode(),
    )
    assert sorted(map(str, subjects)) == ["alerts.raised", "orders.risk_held"]
    # the facts are kept sealed: the address is personal data
    sealed = await stack.column(
        "SELECT facts_sealed FROM risk_evaluations WHERE order_id = :o", o=fifth.order_id
    )
    assert "Renmin" not in str(sealed[0]) and "Longgang" not in str(sealed[0])
    hits = await stack.column("SELECT hits FROM risk_evaluations WHERE order_id = :o", o=fifth.order_id)
    assert hits == [["velocity"]]

    released = await stack.orders.ReviewRiskHold(
        orders_pb2.ReviewRiskHoldRequest(
            order_id=fifth.order_id, decision=orders_pb2.RISK_DECISION_APPROVE, note="the buyer's company"
        )
    )
    assert released.order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert (await stack.orders.ListRiskReviews(orders_pb2.ListRiskReviewsRequest())).evaluations == []
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stack.orders.ReviewRiskHold(
            orders_pb2.ReviewRiskHoldRequest(
                order_id=fifth.order_id, decision=orders_pb2.RISK_DECISION_CANCEL
            )
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    stats = await stack.orders.GetRiskRuleStats(orders_pb2.GetRiskRuleStatsRequest())
    by_rule = {row.rule_id: row for row in stats.rules}
    assert (by_rule["velocity"].evaluated, by_rule["velocity"].hits) == (5, 1)
    assert (by_rule["velocity"].approved, by_rule["velocity"].false_positive_rate) == (1, 1.0)


async def test_a_hotel_order_over_500_is_held_and_a_cancel_decision_cancels_it(stack: Stack) -> None:
    request = canonical(random_ref("own"))
    request.shipping_address.CopyFrom(to("Futian", "13700137000", "Grand Hyatt Hotel, room 2101"))
    request.lines[0].quantity = 20  # 20 × 45.00 = 900 yuan
    order = (await stack.orders.IngestOrder(request)).order
    assert order.status == orders_pb2.ORDER_STATUS_ON_HOLD
    evaluation = (
        await stack.orders.GetRiskEvaluation(orders_pb2.GetRiskEvaluationRequest(order_id=order.order_id))
    ).evaluation
    address = next(r for r in evaluation.results if r.rule_id == "address")
    assert list(address.seen["address_matched"]) == ["hotel"]
    cancelled = await stack.orders.ReviewRiskHold(
        orders_pb2.ReviewRiskHoldRequest(order_id=order.order_id, decision=orders_pb2.RISK_DECISION_CANCEL)
    )
    assert cancelled.order.status == orders_pb2.ORDER_STATUS_CANCELLED


async def test_a_rule_set_is_drafted_dry_run_and_activated(stack: Stack) -> None:
    await handlers.risk.ensure_default_risk_rules(stack.uow())
    await burst(stack, "13900139000")  # the fifth is held by the default rules
    active = (await stack.orders.GetRiskRuleSet(orders_pb2.GetRiskRuleSetRequest())).rule_set
    assert (active.version, active.status) == (1, "active")

    bad = json.loads(active.document_json)
    bad["rules"][0]["action"] = "delete"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.orders.SaveRiskRuleSetDraft(
            orders_pb2.SaveRiskRuleSetDraftRequest(document_json=json.dumps(bad))
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "document_json.rules[0].action" in (refused.value.details() or "")

    relaxed = risk.default_document()
    relaxed["rules"][1]["enabled"] = False  # no velocity rule
    draft = (
        await stack.orders.SaveRiskRuleSetDraft(
            orders_pb2.SaveRiskRuleSetDraftRequest(
                document_json=json.dumps(relaxed), note="peak: no velocity"
            )
        )
    ).rule_set
    assert (draft.version, draft.status) == (2, "draft")
    run = await stack.orders.DryRunRiskRuleSet(orders_pb2.DryRunRiskRuleSetRequest(version=2, last_orders=10))
    assert (run.orders, run.would_hold, run.held_at_the_time) == (5, 0, 1)
    assert len(run.no_longer_held) == 1

    activated = (
        await stack.orders.ActivateRiskRuleSet(orders_pb2.ActivateRiskRuleSetRequest(version=2))
    ).rule_set
    assert activated.status == "active"
    assert (await stack.orders.GetRiskRuleSet(orders_pb2.GetRiskRuleSetRequest())).rule_set.version == 2
    assert (
        await stack.orders.GetRiskRuleSet(orders_pb2.GetRiskRuleSetRequest(version=1))
    ).rule_set.status == "retired"
    later = await burst(stack, "13900139001")
    assert later[4].status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT  # the new rules apply at once
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stack.orders.ActivateRiskRuleSet(orders_pb2.ActivateRiskRuleSetRequest(version=2))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stack.orders.DryRunRiskRuleSet(orders_pb2.DryRunRiskRuleSetRequest(version=99))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_new_delivery_address_from_the_channel_is_judged_again(stack: Stack) -> None:
    ref = random_ref("own")
    first = canonical(ref)
    first.shipping_address.CopyFrom(to("Futian", "13600136000"))
    first.lines[0].quantity = 20  # 900 yuan
    first.channel_modified_at.FromDatetime(stack.clock.now())
    order = (await stack.orders.IngestOrder(first)).order
    assert order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT

    revised = orders_pb2.IngestOrderRequest()
    revised.CopyFrom(first)
    revised.shipping_address.CopyFrom(to("Futian", "13600136000", "Vienna Hotel, room 808"))
    revised.channel_modified_at.FromDatetime(stack.clock.now() + timedelta(minutes=5))
    reply = await stack.orders.IngestOrder(revised)
    assert reply.outcome == orders_pb2.INGEST_OUTCOME_UPDATED
    got = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))).order
    assert got.status == orders_pb2.ORDER_STATUS_ON_HOLD
    evaluations = await stack.column(
        "SELECT outcome FROM risk_evaluations WHERE order_id = :o ORDER BY evaluation_id", o=order.order_id
    )
    assert evaluations == ["passed", "held"]
    velocity = await stack.orders.GetRiskEvaluation(
        orders_pb2.GetRiskEvaluationRequest(order_id=order.order_id)
    )
    seen = next(r for r in velocity.evaluation.results if r.rule_id == "velocity").seen
    assert seen["phone_orders_1h"] == 1  # the revised order is not counted twice


async def test_a_repeated_delivery_is_not_counted_again_for_its_phone(stack: Stack) -> None:
    """A batch carrying three orders already stored (a poll's overlap, a redelivered push) and one new
    order: the phone has four orders in the hour, not seven, so nothing is frozen."""
    phone = "13500135000"
    requests = []
    for district in ("Futian", "Nanshan", "Luohu", "Longgang"):
        request = canonical(random_ref("own"))
        request.shipping_address.CopyFrom(to(district, phone))
        requests.append(request)
    for request in requests[:3]:
        await stack.orders.IngestOrder(request)
    batch = orders_pb2.IngestOrdersRequest(items=[orders_pb2.IngestItem(order=r) for r in requests])
    reply = await stack.orders.IngestOrders(batch)
    assert (reply.created, reply.unchanged) == (1, 3)
    new_id = reply.results[3].order_id
    got = (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=new_id))).order
    assert got.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    judged = await stack.orders.GetRiskEvaluation(orders_pb2.GetRiskEvaluationRequest(order_id=new_id))
    seen = next(r for r in judged.evaluation.results if r.rule_id == "velocity").seen
    assert seen["phone_orders_1h"] == 4
