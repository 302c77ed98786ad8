"""Webhooks on a fake unit of work and a fake orders: verified, handled once, audited whatever happens."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from services.gateway import mappers
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.webhooks import WebhookError
from services.gateway.handlers.webhooks import METHODS, Webhooks
from services.kit.errors import InvalidArgument, Unauthenticated, Unavailable
from tests.unit.gateway.fakes import FakeAudit, FakeOrders, FakeStore, caller

NOW = 1_700_000_000
SECRETS = {"payment/wechat_pay": b"p" * 32, "carrier/sf": b"c" * 32}
BODY = json.dumps({"transaction_id": "4200001", "out_trade_no": "order-1"}).encode()
SENT_FROM = caller("", kind="anonymous")


def signature(secret: bytes, body: bytes = BODY, at: int = NOW) -> tuple[str, str]:
    return str(at), hmac.new(secret, f"{at}".encode() + b"\n" + body, hashlib.sha256).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def webhooks(orders: FakeOrders | None = None) -> tuple[Webhooks, FakeStore, FakeOrders, FakeAudit, Clock]:
    store, orders, audit, monotonic = FakeStore(), orders or FakeOrders(), FakeAudit(), Clock()
    handler = Webhooks(
        SECRETS,
        300,
        store.uow,
        orders,
        audit,
        mappers.webhook_result_bytes,
        mappers.webhook_result_of,
        lambda: float(NOW),
        monotonic,
        monotonic.sleep,
    )
    return handler, store, orders, audit, monotonic


async def test_a_signed_notification_is_forwarded_as_its_sender_and_audited_with_what_it_touched() -> None:
    handler, store, orders, audit = webhooks()[:4]

    result = await handler.receive(
        "payment", " WeChat_Pay ", BODY, *signature(SECRETS["payment/wechat_pay"]), SENT_FROM
    )

    assert (result.accepted, result.reference, result.duplicate) == (True, "payment-ref-1", False)
    assert orders.forwarded == [("payment", "payment/wechat_pay", "wechat_pay", BODY)]
    assert audit.records == [
        ("payment/wechat_pay", METHODS["payment"], "OK", ["4200001", "order-1", "payment-ref-1", "o-1"], "")
    ]
    [(answered, _)] = store.receipts.values()
    assert mappers.webhook_result_of(answered) == result


async def test_a_repeated_delivery_gets_the_first_answer_without_reaching_orders_again() -> None:
    handler, _, orders, audit = webhooks()[:4]
    signed = signature(SECRETS["payment/wechat_pay"])
    first = await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)

    again = await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)

    assert again.duplicate and again.reference == first.reference and len(orders.forwarded) == 1
    assert audit.records[-1][2:] == (
        "OK",
        ["4200001", "order-1", first.reference],
        "duplicate: the first delivery's answer",
    )


@pytest.mark.parametrize(
    ("kind", "signed_with", "at"),
    [
        ("payment", b"x" * 32, NOW),
        ("payment", SECRETS["carrier/sf"], NOW),  # a carrier's secret never signs a payment
        ("payment", SECRETS["payment/wechat_pay"], NOW - 301),
    ],
)
async def test_a_notification_not_signed_by_its_sender_within_the_window_is_refused_and_audited(
    kind: str, signed_with: bytes, at: int
) -> None:
    handler, store, orders, audit = webhooks()[:4]

    with pytest.raises(Unauthenticated):
        await handler.receive(kind, "wechat_pay", BODY, *signature(signed_with, at=at), SENT_FROM)

    assert not orders.forwarded and not store.receipts
    assert audit.records == [
        (
            "payment/wechat_pay",
            METHODS["payment"],
            "UNAUTHENTICATED",
            ["4200001", "order-1"],
            "authentication required",
        )
    ]


async def test_an_unreadable_notification_lets_its_claim_go_so_a_corrected_delivery_is_handled() -> None:
    handler, _, orders, audit = webhooks(FakeOrders(error=WebhookError("body.trade_state", "unknown state")))[
        :4
    ]
    signed = signature(SECRETS["payment/wechat_pay"])

    with pytest.raises(InvalidArgument) as refused:
        await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)
    orders.error = None
    result = await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)

    assert refused.value.field == "body.trade_state" and not result.duplicate
    assert audit.records[0][2] == "INVALID_ARGUMENT"


async def test_orders_refusing_a_field_is_the_senders_invalid_argument_and_an_outage_its_failure() -> None:
    refusal = UpstreamFailure("INVALID_ARGUMENT", "amount: refused", (("amount", "does not match"),))
    handler, store, orders, audit = webhooks(FakeOrders(failure=refusal))[:4]
    signed = signature(SECRETS["payment/wechat_pay"])

    with pytest.raises(InvalidArgument) as refused:
        await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)
    orders.failure = UpstreamFailure("UNAVAILABLE", "orders is down")
    with pytest.raises(UpstreamFailure):
        await handler.receive("payment", "wechat_pay", BODY, *signed, SENT_FROM)

    assert (refused.value.field, refused.value.problem) == ("amount", "does not match")
    assert [record[2:] for record in audit.records][1] == (
        "UNAVAILABLE",
        ["4200001", "order-1"],
        "orders is down",
    )
    assert not store.receipts


async def test_a_delivery_waits_for_the_first_ones_answer_and_gives_up_retryably() -> None:
    handler, store, orders, _, monotonic = webhooks()
    digest = hashlib.sha256(BODY).hexdigest()
    store.receipts[("payment", "wechat_pay", digest)] = (b"", datetime.fromtimestamp(NOW, UTC))

    with pytest.raises(Unavailable, match="still being handled"):
        await handler.receive(
            "payment", "wechat_pay", BODY, *signature(SECRETS["payment/wechat_pay"]), SENT_FROM
        )

    assert not orders.forwarded and monotonic.now > 15


async def test_a_claim_left_by_a_delivery_that_died_is_taken_over_after_thirty_seconds() -> None:
    handler, store, orders, _, _ = webhooks()
    digest = hashlib.sha256(BODY).hexdigest()
    store.receipts[("payment", "wechat_pay", digest)] = (b"", datetime.fromtimestamp(NOW - 31, UTC))

    result = await handler.receive(
        "payment", "wechat_pay", BODY, *signature(SECRETS["payment/wechat_pay"]), SENT_FROM
    )

    assert not result.duplicate and len(orders.forwarded) == 1


@pytest.mark.parametrize("sender", ["sf", "kuaidi100"])
async def test_carriers_that_push_in_their_own_format_are_not_taken_through_the_hmac_webhook(
    sender: str,
) -> None:
    handler, _, orders, _ = webhooks()[:4]
    with pytest.raises(InvalidArgument, match=f"/v1/webhooks/tracking/{sender}"):
        await handler.receive("carrier", sender, BODY, *signature(SECRETS["carrier/sf"]), SENT_FROM)
    assert orders.forwarded == []
