"""Statement reconciliation against recorded payments and orders, and the one-step repair."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from oms.orders.v1 import orders_pb2
from tests import identity
from tests.conftest import random_ref
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import ingest, pay


async def test_a_statement_finds_the_unrecorded_payment_and_one_step_repairs_it(stack: Stack) -> None:
    recorded = await ingest(stack, random_ref("own"))
    await pay(stack, recorded, "wx-recorded")
    unrecorded = await ingest(stack, random_ref("own"))
    damaged = await ingest(stack, random_ref("own"))
    when = stack.clock.now().isoformat()
    amount = recorded.total.amount_minor
    csv = "\n".join(
        [
            "transaction_id,merchant_order_no,amount,paid_at",
            f"wx-recorded,{recorded.order_id},{amount / 100:.2f},{when}",
            f"wx-unrecorded,{unrecorded.order_id},{amount / 100:.2f},{when}",
            f"wx-damaged,XX{damaged.order_id[-4:]},{amount / 100:.2f},{when}",
        ]
    )
    reply = await stack.orders.ImportStatement(
        orders_pb2.ImportStatementRequest(provider="wechat_pay", csv=csv)
    )
    assert (reply.rows, reply.matched) == (3, 1)
    found = {item.row.transaction_id: item for item in reply.paid_not_recorded}
    assert found["wx-unrecorded"].order_id == unrecorded.order_id
    assert damaged.order_id in found["wx-damaged"].candidate_order_ids
    again = await stack.orders.ImportStatement(
        orders_pb2.ImportStatementRequest(provider="wechat_pay", csv=csv)
    )
    assert again == reply

    stack.clock.advance(timedelta(hours=6))  # the nightly run comes hours later: no clock-skew parking
    repaired = await stack.orders.RepairFromStatement(
        orders_pb2.RepairFromStatementRequest(statement_id=reply.statement_id, transaction_id="wx-unrecorded")
    )
    assert orders_pb2.PaymentState.Name(repaired.payment.state) == "PAYMENT_STATE_APPLIED"
    chosen = await stack.orders.RepairFromStatement(
        orders_pb2.RepairFromStatementRequest(
            statement_id=reply.statement_id, transaction_id="wx-damaged", order_id=damaged.order_id
        )
    )
    assert chosen.payment.order_id == damaged.order_id
    for order in (unrecorded, damaged):
        read = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
        assert read.order.status == orders_pb2.ORDER_STATUS_PAID


async def test_a_statement_id_is_the_importers_own_and_another_importer_gets_a_statement_of_their_own(
    stack: Stack,
) -> None:
    first, second = await ingest(stack, random_ref("own")), await ingest(stack, random_ref("own"))
    when = stack.clock.now().isoformat()
    header = "transaction_id,merchant_order_no,amount,paid_at"

    def csv(transaction: str, order: orders_pb2.Order) -> str:
        return f"{header}\n{transaction},{order.order_id},{order.total.amount_minor / 100:.2f},{when}"

    statement_id = random_ref("st")
    as_a = identity.as_gateway("finance", subject="finance-a")
    as_b = identity.as_gateway("finance", subject="finance-b")
    a_first = await stack.orders.ImportStatement(
        orders_pb2.ImportStatementRequest(
            provider="wechat_pay", statement_id=statement_id, csv=csv("wx-a", first)
        ),
        metadata=as_a,
    )
    b_claims_it = await stack.orders.ImportStatement(
        orders_pb2.ImportStatementRequest(
            provider="wechat_pay", statement_id=statement_id, csv=csv("wx-b", second)
        ),
        metadata=as_b,
    )
    a_again = await stack.orders.ImportStatement(
        orders_pb2.ImportStatementRequest(
            provider="wechat_pay", statement_id=statement_id, csv=csv("wx-b", second)
        ),
        metadata=as_a,
    )

    assert a_first.statement_id == b_claims_it.statement_id == statement_id
    assert [item.row.transaction_id for item in a_first.paid_not_recorded] == ["wx-a"]
    assert [item.row.transaction_id for item in b_claims_it.paid_not_recorded] == ["wx-b"]
    assert a_again == a_first
    with pytest.raises(grpc.aio.AioRpcError) as not_bs:
        await stack.orders.RepairFromStatement(
            orders_pb2.RepairFromStatementRequest(statement_id=statement_id, transaction_id="wx-a"),
            metadata=as_b,
        )
    assert not_bs.value.code() == grpc.StatusCode.NOT_FOUND
    stack.clock.advance(timedelta(hours=6))
    repaired = await stack.orders.RepairFromStatement(
        orders_pb2.RepairFromStatementRequest(statement_id=statement_id, transaction_id="wx-b"),
        metadata=as_b,
    )
    assert repaired.payment.order_id == second.order_id
