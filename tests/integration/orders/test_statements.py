"""Statement reconciliation against recorded payments and orders, and the one-step repair."""

from __future__ import annotations

from datetime import timedelta

from oms.orders.v1 import orders_pb2
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
