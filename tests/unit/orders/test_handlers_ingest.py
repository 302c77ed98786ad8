"""Ingest decisions on a fake unit of work: new, duplicate, revision, stale, quarantine."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.kit.errors import InvalidArgument
from services.orders import handlers
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Channel, OrderCancelled, OrderCreated, OrderUpdated
from services.orders.domain.timeline import Actor
from services.orders.handlers import ChannelPayload, Outcome
from services.orders.handlers.ingest import MAX_BATCH
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders
from tests.unit.orders.test_model import command

ACTOR = Actor.service("test")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"


async def ingest(db: FakeOrders, *items: object) -> list[handlers.Ingested]:
    results, _ = await handlers.ingest(db.uow(), POLICY, list(items), ACTOR)  # type: ignore[arg-type]
    return results


async def test_a_new_order_is_stored_with_its_reserve_step_due_and_announced() -> None:
    db = FakeOrders()
    results, changes = await handlers.ingest(db.uow(), POLICY, [command()], ACTOR)
    [result] = results
    assert (result.outcome, result.pending_step) == (Outcome.CREATED, "reserve")
    assert result.order is not None
    stored = db.order(result.order.order_id)
    assert (stored.step, stored.step_due_at, stored.order.status) == (
        "reserve",
        NOW,
        OrderStatus.PENDING_PAYMENT,
    )
    assert changes.due_steps == {result.order.order_id}
    assert db.kinds(result.order.order_id) == ["created"]
    assert db.published(OrderCreated) == [(result.order.order_id, OrderCreated(OrderStatus.PENDING_PAYMENT))]


async def test_the_same_channel_order_again_is_unchanged_and_writes_nothing() -> None:
    db = FakeOrders()
    [first] = await ingest(db, command())
    published = list(db.state.published)
    [again] = await ingest(db, command())
    assert again.outcome is Outcome.UNCHANGED
    assert again.order is not None and first.order is not None
    assert again.order.order_id == first.order.order_id
    assert len(db.state.orders) == 1
    assert db.state.published == published


async def test_a_batch_naming_one_channel_order_twice_creates_it_once() -> None:
    db = FakeOrders()
    results = await ingest(db, command(), command())
    assert [result.outcome for result in results] == [Outcome.CREATED, Outcome.UNCHANGED]
    assert len(db.state.orders) == 1


async def test_a_later_version_revises_the_order_and_an_earlier_one_is_stale() -> None:
    db = FakeOrders()
    modified = NOW - timedelta(hours=1)
    [first] = await ingest(db, command(channel_modified_at=modified))
    assert first.order is not None
    order_id = first.order.order_id
    [revised] = await ingest(
        db, command(channel_modified_at=modified + timedelta(minutes=5), buyer_note="ring twice")
    )
    [stale] = await ingest(
        db, command(channel_modified_at=modified + timedelta(minutes=1), buyer_note="older")
    )
    assert (revised.outcome, stale.outcome) == (Outcome.UPDATED, Outcome.STALE)
    order = db.order(order_id).order
    assert (order.buyer_note, order.version) == ("ring twice", 2)
    assert db.kinds(order_id) == ["created", "updated"]
    assert db.published(OrderUpdated) == [(order_id, OrderUpdated(("buyer_note",)))]


async def test_a_later_version_cancelling_the_order_cancels_it_and_drops_its_reserve_step() -> None:
    db = FakeOrders()
    modified = NOW - timedelta(hours=1)
    [first] = await ingest(db, command(channel_modified_at=modified))
    assert first.order is not None
    [revised] = await ingest(db, command(channel_modified_at=modified + timedelta(minutes=5), cancelled=True))
    assert revised.outcome is Outcome.UPDATED
    stored = db.order(first.order.order_id)
    assert stored.order.status is OrderStatus.CANCELLED
    assert stored.step is None  # nothing was reserved: nothing to release
    assert [type(event) for _, event in db.published(OrderCancelled)] == [OrderCancelled]


async def test_an_unreadable_channel_payload_is_quarantined_and_the_rest_of_the_batch_goes_in() -> None:
    db = FakeOrders()
    payload = json.loads((FIXTURES / "taobao" / "unpaid.json").read_text())
    broken = {**payload, "receiver_mobile": ""}
    results = await ingest(db, ChannelPayload(Channel.TAOBAO, broken), command(channel_order_id="TB-2"))
    rejected, created = results
    assert (rejected.outcome, created.outcome) == (Outcome.REJECTED, Outcome.CREATED)
    assert rejected.channel_order_id == str(payload["tid"]) and rejected.error_field
    [kept] = db.state.quarantine
    assert (kept["channel"], kept["channel_order_id"], kept["payload"]) == (
        "TAOBAO",
        str(payload["tid"]),
        broken,
    )
    assert kept["error_field"] == rejected.error_field and kept["reason"] == rejected.error
    assert len(db.state.orders) == 1


async def test_a_readable_channel_payload_is_stored_with_its_raw_document() -> None:
    db = FakeOrders()
    payload = json.loads((FIXTURES / "taobao" / "unpaid.json").read_text())
    [result] = await ingest(db, ChannelPayload(Channel.TAOBAO, payload))
    assert result.outcome is Outcome.CREATED and result.order is not None
    assert json.loads(db.state.payloads[result.order.order_id]) == payload


async def test_a_canonical_order_that_is_wrong_is_rejected_and_not_quarantined() -> None:
    db = FakeOrders()
    [result] = await ingest(db, command(lines=()))
    assert (result.outcome, result.error_field) == (Outcome.REJECTED, "lines")
    assert db.state.quarantine == [] and db.state.orders == {}


async def test_a_batch_over_the_limit_is_refused_whole() -> None:
    db = FakeOrders()
    with pytest.raises(InvalidArgument) as refused:
        await ingest(db, *[command(channel_order_id=f"TB-{n}") for n in range(MAX_BATCH + 1)])
    assert refused.value.field == "items"
    assert db.state.orders == {}
