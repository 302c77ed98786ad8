from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oms.common.v1 import common_pb2
from oms.inventory.v1 import inventory_pb2_grpc
from oms.routing.v1 import routing_pb2 as pb
from oms.routing.v1 import routing_pb2_grpc
from services.inventory import handlers as stock
from services.inventory.bootstrap import unit_of_work as inventory_uow
from services.inventory.domain.model import GoodsType, Line
from services.inventory.grpc_api import InventoryServicer
from services.inventory.handlers import Policy
from services.inventory.store import InventoryUnitOfWork
from services.kit import grpc_client
from services.kit.db import make_engine
from services.kit.grpc_server import GrpcServer
from services.kit.migrate import alembic_config
from services.routing import bootstrap
from services.routing.domain.commands import PlanCommand
from services.routing.domain.decision_log import result_document
from services.routing.domain.defaults import WAREHOUSES, default_rules
from services.routing.domain.documents import from_document, to_document
from services.routing.domain.model import RouteLine, Stock
from services.routing.domain.regression import replay
from services.routing.handlers import planning
from services.routing.handlers.parked import mark_parked_due, retry_parked
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.handlers.rule_sets import ensure_default_rules
from services.routing.peers import InventoryStock
from services.routing.store import RoutingUnitOfWork
from tests import identity
from tests.conftest import ROOT


@dataclass
class Stack:
    routing: routing_pb2_grpc.RoutingServiceStub
    routing_engine: AsyncEngine
    inventory_engine: AsyncEngine
    cache: RuleSetCache
    stock: InventoryStock

    def inventory_uow(self) -> InventoryUnitOfWork:
        return inventory_uow(self.inventory_engine)

    def routing_uow(self) -> RoutingUnitOfWork:
        return bootstrap.unit_of_work(self.routing_engine)()

    async def receive(self, warehouse: str, sku: str, units: int) -> None:
        await stock.record_receipt(
            self.inventory_uow(),
            Policy(),
            f"g-{warehouse}-{sku}-{units}",
            warehouse,
            sku,
            units,
            owner="gateway/user/clerk-1",
        )

    async def subjects(self) -> list[str]:
        async with self.routing_engine.connect() as conn:
            return list((await conn.execute(text("SELECT subject FROM outbox ORDER BY id"))).scalars())


@pytest.fixture
async def stack(inventory_db: str, routing_db: str) -> AsyncIterator[Stack]:
    inventory_engine, routing_engine = make_engine(inventory_db), make_engine(routing_db)
    inventory_server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["inv"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
            InventoryServicer(lambda: inventory_uow(inventory_engine), Policy()), s
        ),
    )
    await inventory_server.start()
    channel = grpc_client.channel(
        f"127.0.0.1:{inventory_server.port}", identity=identity.service_identity("routing")
    )
    built = Stack(None, routing_engine, inventory_engine, RuleSetCache(), InventoryStock(channel))  # type: ignore[arg-type]
    for warehouse in WAREHOUSES:
        await stock.put_warehouse(built.inventory_uow(), warehouse.warehouse_id, warehouse.name)
    for sku in ("TEA", "CUP"):
        await stock.put_sku(built.inventory_uow(), sku, sku)
    await stock.put_sku(
        built.inventory_uow(), "FISH", "Chilled salmon", GoodsType.COLD_CHAIN, "seafood", 1200
    )
    await ensure_default_rules(built.routing_uow())
    routing_server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["routing"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: routing_pb2_grpc.add_RoutingServiceServicer_to_server(
            bootstrap.servicer(routing_engine, built.cache, built.stock), s
        ),
    )
    await routing_server.start()
    async with identity.client_channel(f"127.0.0.1:{routing_server.port}") as routing_channel:
        built.routing = routing_pb2_grpc.RoutingServiceStub(routing_channel)
        yield built
    await routing_server.stop()
    await inventory_server.stop()
    await channel.close()
    await inventory_engine.dispose()
    await routing_engine.dispose()


async def mark_due(conn: AsyncConnection, sku: str) -> int:
    """What the stock-arrival consumer does in its inbox transaction."""
    return await mark_parked_due(RoutingUnitOfWork.joined(conn), sku)


def order(
    order_id: str, province: str = "浙江省", city: str = "杭州市", *lines: pb.RouteLine
) -> pb.PlanFulfilmentRequest:
    return pb.PlanFulfilmentRequest(
        order_id=order_id,
        address=common_pb2.Address(
            province=province, city=city, detail="1 Road", recipient_name="A", phone="1"
        ),
        lines=lines or [pb.RouteLine(sku="TEA", quantity=1, unit_weight_g=300)],
    )


async def test_hangzhou_is_planned_from_shanghai_explained_logged_and_announced(stack: Stack) -> None:
    for warehouse in ("WH-SH", "WH-CD"):
        await stack.receive(warehouse, "TEA", 50)
    reply = await stack.routing.PlanFulfilment(order("o-1"))
    decision = reply.decision
    assert [s.warehouse_id for s in decision.shipments] == ["WH-SH"]
    assert (decision.shipments[0].carrier, decision.province, decision.city) == ("SF", "Zhejiang", "Hangzhou")
    assert decision.explanation[0].startswith("Shanghai chosen: next-day coverage for Hangzhou, Zhejiang")
    assert any(line.startswith("Chengdu lost:") for line in decision.explanation)
    assert any(
        line.startswith("Beijing excluded: lacks stock of TEA (has 0") for line in decision.explanation
    )

    again = await stack.routing.PlanFulfilment(order("o-1"))
    assert again.decision.decision_id == decision.decision_id
    explained = await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-1"))
    assert explained.decision == decision
    assert await stack.subjects() == ["routing.planned"]


async def test_a_warehouse_below_safety_stock_is_not_a_candidate(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-WH", "TEA", 10)
    await stock.set_stock_policy(
        stack.inventory_uow(), Policy(), "WH-SH", "TEA", normal_level=40, safety_level=0
    )
    decision = (await stack.routing.PlanFulfilment(order("o-2"))).decision
    assert [s.warehouse_id for s in decision.shipments] == ["WH-WH"]
    assert any(
        line.startswith("Shanghai excluded: lacks stock of TEA (has 0") for line in decision.explanation
    )


async def test_the_zhejiang_incident_is_caught_by_the_dry_run_and_activation_is_refused(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-CD", "TEA", 10)
    await stack.routing.PlanFulfilment(order("o-3"))
    await stack.routing.PutExpectedDecisions(
        pb.PutExpectedDecisionsRequest(
            cases=[
                pb.ExpectedDecision(
                    name="Hangzhou → Shanghai",
                    province="浙江",
                    city="杭州",
                    lines=[pb.RouteLine(sku="X", quantity=1)],
                    expect_warehouse_id="WH-SH",
                ),
                pb.ExpectedDecision(
                    name="Urumqi → EMS",
                    province="新疆",
                    city="乌鲁木齐",
                    lines=[pb.RouteLine(sku="X", quantity=1)],
                    expect_carrier="EMS",
                ),
            ]
        )
    )
    rules = default_rules()
    broken = replace(
        rules,
        coverage=tuple(
            replace(c, regions=tuple(r for r in c.regions if r != "Zhejiang"))
            if c.warehouse_id == "WH-SH"
            else c
            for c in rules.coverage
        ),
    )
    draft = await stack.routing.SaveDraftRuleSet(
        pb.SaveDraftRuleSetRequest(document_json=json.dumps(to_document(broken)), note="new coverage table")
    )
    version = draft.rule_set.version
    dry = await stack.routing.DryRunRuleSet(pb.DryRunRuleSetRequest(version=version))
    assert not dry.passed
    assert [(c.name, c.passed) for c in dry.cases] == [("Hangzhou → Shanghai", False), ("Urumqi → EMS", True)]
    assert [(c.order_id, list(c.before_warehouse_ids), list(c.after_warehouse_ids)) for c in dry.changed] == [
        ("o-3", ["WH-SH"], ["WH-CD"])
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.routing.ActivateRuleSet(pb.ActivateRuleSetRequest(version=version))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Hangzhou → Shanghai" in refused.value.details()

    fixed = await stack.routing.SaveDraftRuleSet(
        pb.SaveDraftRuleSetRequest(document_json=json.dumps(to_document(rules)), note="coverage fixed")
    )
    parked = await stack.routing.PlanFulfilment(
        order("o-cold", "新疆", "乌鲁木齐", pb.RouteLine(sku="FISH", quantity=1))
    )
    assert parked.decision.parked_reason == "cold_chain_impossible"
    activated = await stack.routing.ActivateRuleSet(pb.ActivateRuleSetRequest(version=fixed.rule_set.version))
    assert activated.rule_set.status == "active" and activated.dry_run.passed
    current = await stack.routing.GetRuleSet(pb.GetRuleSetRequest(version=0))
    assert current.rule_set.version == fixed.rule_set.version
    assert "routing.rules_activated" in await stack.subjects()
    async with stack.routing_engine.connect() as conn:  # activation makes every parked order due again
        due = (
            await conn.execute(text("SELECT order_id FROM parked_orders WHERE retry_due IS NOT NULL"))
        ).scalars()
        assert list(due) == ["o-cold"]


async def test_a_parked_order_is_planned_when_stock_arrives(stack: Stack) -> None:
    decision = (await stack.routing.PlanFulfilment(order("o-4"))).decision
    assert decision.parked_reason == "out_of_stock" and not decision.shipments
    parked = await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())
    assert [(o.order_id, o.reason) for o in parked.orders] == [("o-4", "out_of_stock")]
    assert await retry_parked(stack.routing_uow, stack.cache, stack.stock) == 0  # nothing is due yet

    await stack.receive("WH-WH", "TEA", 5)
    async with stack.routing_engine.begin() as conn:
        assert await mark_due(conn, "TEA") == 1
    assert await retry_parked(stack.routing_uow, stack.cache, stack.stock) == 1
    planned = (await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-4"))).decision
    assert [s.warehouse_id for s in planned.shipments] == ["WH-WH"]
    assert not (await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())).orders
    assert await stack.subjects() == ["routing.parked", "alerts.raised", "routing.planned"]


async def test_decisions_are_reproducible_from_the_log(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    await stack.receive("WH-BJ", "CUP", 3)
    await stack.routing.PlanFulfilment(
        order("o-5", "江苏", "苏州", pb.RouteLine(sku="TEA", quantity=1), pb.RouteLine(sku="CUP", quantity=2))
    )
    async with stack.routing_engine.connect() as conn:
        logged = (
            await conn.execute(
                text(
                    "SELECT d.inputs, d.result, r.document, r.version FROM decisions d "
                    "JOIN rule_sets r ON r.version = d.rule_set_version"
                )
            )
        ).one()
    again = result_document(replay(logged.inputs, from_document(logged.version, logged.document)))
    assert again == logged.result
    assert len(logged.result["shipments"]) == 2


async def test_a_cold_chain_sku_is_routed_by_its_catalogue_entry_whatever_the_caller_says(
    stack: Stack,
) -> None:
    await stack.receive("WH-BJ", "FISH", 20)
    # orders sends no goods type; a caller that says "normal" is not believed either
    fish = pb.RouteLine(sku="FISH", quantity=2, goods_type="normal", unit_weight_g=1)
    parked = (await stack.routing.PlanFulfilment(order("o-fish", "浙江", "杭州", fish))).decision
    assert (parked.parked_reason, list(parked.shipments)) == ("cold_chain_impossible", [])
    assert "FISH needs a cold chain" in parked.parked_detail and "WH-BJ" in parked.parked_detail
    assert any(
        line.startswith("Beijing excluded: cannot ship cold-chain goods") for line in parked.explanation
    )
    listed = (await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())).orders
    assert [(o.order_id, o.reason) for o in listed] == [("o-fish", "cold_chain_impossible")]

    await stack.receive("WH-SH", "FISH", 5)  # cold stock arrives: the parked order becomes due
    async with stack.routing_engine.begin() as conn:
        assert await mark_due(conn, "FISH") == 1
    assert await retry_parked(stack.routing_uow, stack.cache, stack.stock) == 1
    planned = (await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-fish"))).decision
    [shipment] = planned.shipments
    assert (shipment.warehouse_id, shipment.carrier) == ("WH-SH", "SF-COLD")
    async with stack.routing_engine.connect() as conn:
        lines = (
            await conn.execute(
                text(
                    "SELECT inputs->'request'->'lines' FROM decisions"
                    " WHERE parked_reason = '' AND order_id = 'o-fish'"
                )
            )
        ).scalar_one()
    assert [(line["goods_type"], line["unit_weight_g"]) for line in lines] == [("cold_chain", 1200)]


def singapore(order_id: str) -> pb.PlanFulfilmentRequest:
    """The address the Shopee adapter makes of the documented SG fixture (a city-state: no state, no city)."""
    return pb.PlanFulfilmentRequest(
        order_id=order_id,
        address=common_pb2.Address(
            country_code="SG",
            province="SG",
            city="SG",
            detail="1 Orchard Road",
            recipient_name="T",
            phone="65",
        ),
        lines=[pb.RouteLine(sku="TEA", quantity=2)],
    )


async def test_a_singapore_order_is_planned_at_the_cross_border_warehouse_never_refused(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 50)
    await stack.receive("WH-XB", "TEA", 50)
    decision = (await stack.routing.PlanFulfilment(singapore("o-sg"))).decision
    [shipment] = decision.shipments
    assert (shipment.warehouse_id, shipment.carrier) == ("WH-XB", "SF-INTL")
    assert (decision.country_code, decision.province, decision.city) == ("SG", "Singapore", "Singapore")
    assert any(line.startswith("Shanghai excluded: does not cover SG") for line in decision.explanation)

    mainland_only = replace(
        default_rules(),
        warehouses=tuple(w for w in WAREHOUSES if not w.cross_border),
        coverage=tuple(c for c in default_rules().coverage if c.warehouse_id != "WH-XB"),
        rates=tuple(r for r in default_rules().rates if r.warehouse_id != "WH-XB"),
    )
    async with stack.routing_engine.connect() as conn:
        logged = (
            await conn.execute(
                text(
                    "SELECT d.inputs, d.result, r.document, r.version FROM decisions d "
                    "JOIN rule_sets r ON r.version = d.rule_set_version WHERE d.order_id = 'o-sg'"
                )
            )
        ).one()
    replayed = replay(logged.inputs, from_document(logged.version, logged.document))
    assert result_document(replayed) == logged.result

    case = pb.ExpectedDecision(
        name="Singapore → WH-XB",
        country_code="SG",
        province="SG",
        city="SG",
        lines=[pb.RouteLine(sku="X", quantity=1)],
        expect_warehouse_id="WH-XB",
    )
    await stack.routing.PutExpectedDecisions(pb.PutExpectedDecisionsRequest(cases=[case]))
    draft = await stack.routing.SaveDraftRuleSet(
        pb.SaveDraftRuleSetRequest(document_json=json.dumps(to_document(mainland_only)), note="no exports")
    )
    dry = await stack.routing.DryRunRuleSet(pb.DryRunRuleSetRequest(version=draft.rule_set.version))
    assert [(c.name, c.passed, c.detail) for c in dry.cases] == [
        ("Singapore → WH-XB", False, "expected WH-XB, got parked")
    ]
    await stack.routing.PutExpectedDecisions(pb.PutExpectedDecisionsRequest(cases=[]))
    await stack.routing.ActivateRuleSet(pb.ActivateRuleSetRequest(version=draft.rule_set.version))
    parked = (await stack.routing.PlanFulfilment(singapore("o-sg-2"))).decision
    assert (parked.parked_reason, parked.parked_detail) == ("no_coverage", "no warehouse covers SG")
    listed = (await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())).orders
    assert [(o.order_id, o.reason, o.detail) for o in listed] == [
        ("o-sg-2", "no_coverage", "no warehouse covers SG")
    ]


async def test_an_unknown_sku_is_a_permanent_answer_naming_the_sku(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.routing.PlanFulfilment(order("o-x", "浙江", "杭州", pb.RouteLine(sku="NOPE", quantity=1)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "lines[0].sku: unknown SKU NOPE"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (order("o-6", "Atlantis", "X"), "address.province"),
        (
            pb.PlanFulfilmentRequest(
                order_id="o-6", address=common_pb2.Address(province="浙江", city="杭州")
            ),
            "lines",
        ),
        (order("o-6", "浙江", "杭州", pb.RouteLine(sku="NOPE", quantity=1)), "lines[0].sku"),
        (order("o-6", "浙江", "杭州", pb.RouteLine(sku="TEA", quantity=0)), "lines[0].quantity"),
        (
            order("o-6", "浙江", "杭州", pb.RouteLine(sku="TEA", quantity=1, goods_type="plutonium")),
            "lines[0].goods_type",
        ),
        (pb.PlanFulfilmentRequest(order_id="o-6", lines=[pb.RouteLine(sku="TEA", quantity=1)]), "address"),
    ],
)
async def test_bad_orders_are_refused_naming_the_field(
    stack: Stack, request_: pb.PlanFulfilmentRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.routing.PlanFulfilment(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}:")
    assert await stack.subjects() == []


async def test_a_shadow_rule_set_decides_alongside_and_only_reports_its_differences(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 20)
    await stack.receive("WH-WH", "TEA", 20)
    rules = default_rules()
    without_shanghai = replace(
        rules,
        warehouses=tuple(
            replace(w, open=False) if w.warehouse_id == "WH-SH" else w for w in rules.warehouses
        ),
    )
    draft = await stack.routing.SaveDraftRuleSet(
        pb.SaveDraftRuleSetRequest(
            document_json=json.dumps(to_document(without_shanghai)), note="Shanghai closed for stocktaking"
        )
    )
    await stack.routing.SetShadowRuleSet(pb.SetShadowRuleSetRequest(version=draft.rule_set.version))

    hangzhou = (await stack.routing.PlanFulfilment(order("s-1"))).decision
    wuhan = (await stack.routing.PlanFulfilment(order("s-2", "湖北", "武汉"))).decision
    assert [s.warehouse_id for s in hangzhou.shipments] == ["WH-SH"]  # the active rule set acts
    assert [s.warehouse_id for s in wuhan.shipments] == ["WH-WH"]
    report = await stack.routing.GetShadowReport(pb.GetShadowReportRequest())
    assert (report.shadow_version, report.decisions_compared) == (draft.rule_set.version, 2)
    assert [
        (d.order_id, list(d.before_warehouse_ids), list(d.after_warehouse_ids)) for d in report.differences
    ] == [("s-1", ["WH-SH"], ["WH-WH"])]

    await stack.routing.SetShadowRuleSet(pb.SetShadowRuleSetRequest(version=0))
    with pytest.raises(grpc.aio.AioRpcError) as active:
        await stack.routing.SetShadowRuleSet(pb.SetShadowRuleSetRequest(version=1))
    assert active.value.code() == grpc.StatusCode.FAILED_PRECONDITION


class NothingOnHand:
    """Inventory as a plan that read it before the stock arrived saw it: nothing anywhere."""

    async def availability(self, skus: object, warehouses: object) -> Stock:
        return Stock(levels={}, catalogue={})


async def test_a_plan_that_read_stale_stock_does_not_park_an_order_already_planned(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    planned = (await stack.routing.PlanFulfilment(order("o-race"))).decision
    assert planned.shipments and not planned.parked_reason
    late = await planning.plan_fulfilment(
        stack.routing_uow,
        stack.cache,
        NothingOnHand(),
        PlanCommand("o-race", "浙江省", "杭州市", (RouteLine("TEA", 1),)),
    )
    assert not late.decision.parked, "the racing call gets the order's plan, not a park"
    assert not (await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())).orders
    explained = (await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-race"))).decision
    assert [s.warehouse_id for s in explained.shipments] == ["WH-SH"]


async def test_a_parked_entry_beside_a_plan_is_dropped_and_the_plan_announced_again(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    await stack.routing.PlanFulfilment(order("o-stale"))
    async with stack.routing_engine.begin() as conn:  # what a racing park left behind before the fix
        await conn.execute(
            text(
                "INSERT INTO parked_orders (order_id, request, skus, reason, detail, parked_at, retry_due)"
                " VALUES ('o-stale', CAST(:r AS jsonb), ARRAY['TEA'], 'out_of_stock', '', now(), now())"
            ),
            {
                "r": json.dumps(
                    {
                        "order_id": "o-stale",
                        "province": "浙江省",
                        "city": "杭州市",
                        "lines": [{"sku": "TEA", "quantity": 1}],
                        "priority": "standard",
                    }
                )
            },
        )
    await retry_parked(stack.routing_uow, stack.cache, stack.stock)
    assert not (await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())).orders
    assert (await stack.subjects()).count("routing.planned") == 2


class StockArrivesMeanwhile:
    """Real inventory, and stock of the SKU arriving (its event handled) while the retry reads it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def availability(self, skus: object, warehouses: object) -> dict[tuple[str, str], int]:
        seen = await self.stack.stock.availability(skus, warehouses)  # type: ignore[arg-type]
        async with self.stack.routing_engine.begin() as conn:
            await mark_due(conn, "TEA")
        return seen


async def test_stock_arriving_during_a_parked_retry_is_not_lost(stack: Stack) -> None:
    await stack.routing.PlanFulfilment(order("o-late"))
    async with stack.routing_engine.begin() as conn:
        await mark_due(conn, "TEA")
    assert await retry_parked(stack.routing_uow, stack.cache, StockArrivesMeanwhile(stack)) == 0
    async with stack.routing_engine.connect() as conn:
        due = await conn.scalar(text("SELECT retry_due FROM parked_orders WHERE order_id = 'o-late'"))
    assert due is not None, "the arrival during the retry keeps the order due"
    await stack.receive("WH-SH", "TEA", 5)
    assert await retry_parked(stack.routing_uow, stack.cache, stack.stock) == 1


async def test_a_parked_retry_that_fails_does_not_stop_the_others(stack: Stack) -> None:
    for order_id in ("o-bad", "o-good"):
        await stack.routing.PlanFulfilment(order(order_id))
    async with stack.routing_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE parked_orders SET request = jsonb_set(request, '{province}', '\"Atlantis\"'),"
                " retry_due = now() - interval '1 minute' WHERE order_id = 'o-bad'"
            )
        )
        await mark_due(conn, "TEA")
        await conn.execute(
            text("UPDATE parked_orders SET retry_due = now() - interval '1 minute' WHERE order_id = 'o-bad'")
        )
    await stack.receive("WH-SH", "TEA", 5)
    assert await retry_parked(stack.routing_uow, stack.cache, stack.stock) == 1
    async with stack.routing_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT order_id, retry_due > now() FROM parked_orders"))).all()
    assert [(row[0], row[1]) for row in rows] == [("o-bad", True)], "the failing one waits, the others ran"


async def _take(stack: Stack, order_id: str, warehouse: str, sku: str, units: int) -> None:
    """Another order reserves the stock first (routing's plan for ours did not hold it)."""
    reserved = await stock.reserve(stack.inventory_uow, Policy(), order_id, [Line(sku, warehouse, units)])
    assert reserved.reserved


async def _decisions(stack: Stack, order_id: str) -> list[tuple[str, str, str]]:
    async with stack.routing_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT decision_id, parked_reason, superseded_by FROM decisions WHERE order_id = :o "
                "ORDER BY decided_at, decision_id"
            ),
            {"o": order_id},
        )
        return [(row.decision_id, row.parked_reason, row.superseded_by) for row in rows]


async def test_a_replan_of_a_refused_plan_decides_on_live_stock_and_a_plain_repeat_keeps_the_plan(
    stack: Stack,
) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    first = (await stack.routing.PlanFulfilment(order("o-re"))).decision
    assert [s.warehouse_id for s in first.shipments] == ["WH-SH"]
    await _take(stack, "o-other", "WH-SH", "TEA", 4)  # all it may give (safety stock)
    await stack.receive("WH-WH", "TEA", 5)

    repeat = (await stack.routing.PlanFulfilment(order("o-re"))).decision
    assert repeat.decision_id == first.decision_id  # a plain repeat is idempotent

    request = order("o-re")
    request.refused_decision_id = first.decision_id
    replanned = (await stack.routing.PlanFulfilment(request)).decision
    assert replanned.decision_id != first.decision_id
    assert [s.warehouse_id for s in replanned.shipments] == ["WH-WH"]
    assert any(line.startswith(f"replanned: decision {first.decision_id}") for line in replanned.explanation)
    assert await _decisions(stack, "o-re") == [
        (first.decision_id, "", replanned.decision_id),
        (replanned.decision_id, "", ""),
    ]
    explained = (await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-re"))).decision
    assert explained.decision_id == replanned.decision_id
    # after the replan a plain repeat, and a late replan of the superseded plan, answer the new plan
    assert (await stack.routing.PlanFulfilment(order("o-re"))).decision.decision_id == replanned.decision_id
    assert (await stack.routing.PlanFulfilment(request)).decision.decision_id == replanned.decision_id
    assert len(await _decisions(stack, "o-re")) == 2
    assert await stack.subjects() == ["routing.planned", "routing.planned"]


async def test_two_concurrent_replans_of_one_refused_plan_write_one_new_decision(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    first = (await stack.routing.PlanFulfilment(order("o-race"))).decision
    await _take(stack, "o-other", "WH-SH", "TEA", 4)  # all it may give (safety stock)
    await stack.receive("WH-WH", "TEA", 5)
    request = order("o-race")
    request.refused_decision_id = first.decision_id

    answers = await asyncio.gather(*(stack.routing.PlanFulfilment(request) for _ in range(4)))

    assert len({answer.decision.decision_id for answer in answers}) == 1
    decisions = await _decisions(stack, "o-race")
    assert len(decisions) == 2 and decisions[0][2] == answers[0].decision.decision_id


async def test_a_replan_that_finds_no_stock_anywhere_parks_the_order(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 5)
    first = (await stack.routing.PlanFulfilment(order("o-none"))).decision
    await _take(stack, "o-other", "WH-SH", "TEA", 4)  # all it may give (safety stock)
    request = order("o-none")
    request.refused_decision_id = first.decision_id

    parked = (await stack.routing.PlanFulfilment(request)).decision

    assert parked.parked_reason == "out_of_stock"
    listed = await stack.routing.ListParkedOrders(pb.ListParkedOrdersRequest())
    assert [o.order_id for o in listed.orders] == ["o-none"]
    explained = (await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="o-none"))).decision
    assert explained.decision_id == parked.decision_id


async def test_a_decision_log_from_before_replans_is_upgraded_with_its_plans_current(routing_db: str) -> None:
    config = alembic_config(ROOT / "services" / "routing" / "migrations", routing_db)
    await asyncio.to_thread(command.downgrade, config, "0001")  # the schema as it was before replans
    engine = make_engine(routing_db)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO decisions (decision_id, order_id, decided_at, rule_set_version, inputs, "
                    "result) VALUES ('d-old', 'o-old', now(), 1, '{}', '{}')"
                )
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT superseded_by FROM decisions WHERE decision_id = 'd-old'"))
            ).one()
            indexes = set(
                (
                    await conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'decisions'"))
                ).scalars()
            )
        assert row.superseded_by == ""
        assert "decisions_one_current_plan_per_order" in indexes
        assert "decisions_one_plan_per_order" not in indexes
    finally:
        await engine.dispose()


# ---- the batch call of orders' process manager -------------------------------------------------------


async def test_a_batch_is_planned_on_one_read_of_stock_and_never_plans_the_last_unit_twice(
    stack: Stack,
) -> None:
    await stack.receive("WH-SH", "TEA", 3)  # 2 reservable (the cap), and nowhere else
    batch = pb.PlanFulfilmentsRequest(
        requests=[order("p-1"), order("p-2"), order("p-3"), pb.PlanFulfilmentRequest(order_id="p-4")]
    )
    reply = await stack.routing.PlanFulfilments(batch)
    assert [o.order_id for o in reply.outcomes] == ["p-1", "p-2", "p-3", "p-4"]
    first, second, third, bad = reply.outcomes
    assert [s.warehouse_id for s in first.decision.shipments] == ["WH-SH"]
    assert [s.warehouse_id for s in second.decision.shipments] == ["WH-SH"]
    # the third would need a unit the first two took in this very batch: parked, not planned
    assert third.decision.parked_reason == "out_of_stock"
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in bad.error.violations] == ["address"]
    again = await stack.routing.PlanFulfilments(pb.PlanFulfilmentsRequest(requests=[order("p-1")]))
    assert again.outcomes[0].decision.decision_id == first.decision.decision_id  # idempotent per order
    single = await stack.routing.ExplainDecision(pb.ExplainDecisionRequest(order_id="p-2"))
    assert single.decision.decision_id == second.decision.decision_id


async def test_an_unknown_sku_in_a_batch_refuses_only_the_orders_that_name_it(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    reply = await stack.routing.PlanFulfilments(
        pb.PlanFulfilmentsRequest(
            requests=[
                order("u-1"),
                order("u-2", "浙江省", "杭州市", pb.RouteLine(sku="NOPE", quantity=1)),
                order("u-3"),
            ]
        )
    )
    good, unknown, other = reply.outcomes
    assert good.decision.shipments and other.decision.shipments
    assert unknown.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in unknown.error.violations] == ["lines[0].sku"]


@dataclass
class OnHand:
    """Inventory answering at once with the same stock for every call."""

    levels: dict[tuple[str, str], int]

    async def availability(self, skus: object, warehouses: object) -> Stock:
        return Stock(levels=dict(self.levels), catalogue={})


async def test_plans_decided_at_the_same_moment_are_recorded_in_one_transaction_each_as_alone(
    stack: Stack,
) -> None:
    writer = planning.DecisionWriter(stack.routing_uow, stack.cache, in_flight=1)
    source = OnHand({("TEA", "WH-SH"): 100})
    await stack.cache.active(stack.routing_uow())  # read once before: the plans need no read of their own
    await stack.cache.shadow(stack.routing_uow())

    def command(order_id: str) -> PlanCommand:
        return PlanCommand(order_id, "浙江省", "杭州市", (RouteLine("TEA", 1),))

    planned = await asyncio.gather(
        *(
            planning.plan_fulfilment(stack.routing_uow, stack.cache, source, command(f"o-g{n}"), writer)
            for n in range(6)
        )
    )
    assert [p.decision.order_id for p in planned] == [f"o-g{n}" for n in range(6)]
    assert all([s.warehouse_id for s in p.decision.shipments] == ["WH-SH"] for p in planned)
    assert writer.batches == 1
    async with stack.routing_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM decisions")) == 1
        assert await conn.scalar(text("SELECT sum(orders) FROM warehouse_load")) == 6
    assert (await stack.subjects()).count("routing.planned") == 6
    # the same orders again with three new ones: the group finds plans, so each is recorded alone, the
    # repeats answering their plans and writing nothing
    again = await asyncio.gather(
        *(
            planning.plan_fulfilment(stack.routing_uow, stack.cache, source, command(f"o-g{n}"), writer)
            for n in range(3, 9)
        )
    )
    assert [p.decision_id for p in again[:3]] == [p.decision_id for p in planned[3:]]
    async with stack.routing_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM decisions")) == 9
        assert await conn.scalar(text("SELECT sum(orders) FROM warehouse_load")) == 9
    assert (await stack.subjects()).count("routing.planned") == 9
