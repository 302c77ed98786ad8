"""Waybill batching on a fake unit of work and scripted carriers: queued at once, retried with back-off
after a failure, asked before retrying after a timeout (never a blind second create), dead-lettered
after the last attempt with its event and alert, replayed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.logistics.domain.commands import CreateWaybills
from services.logistics.domain.events import AlertRaised, WaybillFailed
from services.logistics.domain.waybills import Failed, Issued, RetryPolicy, WaybillState
from services.logistics.handlers import waybills
from tests.unit.logistics.builders import T0, shipment, waybill
from tests.unit.logistics.fakes import FakeUnitOfWork, ScriptedCarriers, State

POLICY = RetryPolicy(max_attempts=3, base_seconds=2, max_seconds=60, jitter=0.0)


@pytest.fixture
def state() -> State:
    found = State()
    for sid in ("s-1", "s-2"):
        found.shipments[sid] = shipment(sid)
    return found


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def runner(state: State, clock: FixedClock, carriers: ScriptedCarriers) -> waybills.WaybillRunner:
    return waybills.WaybillRunner(lambda: FakeUnitOfWork(state, clock), carriers, POLICY, draw=lambda: 0.5)


async def round_of(state: State, clock: FixedClock, carriers: ScriptedCarriers) -> int:
    run = runner(state, clock, carriers)
    started = await run.tick()
    await run.settle()
    return started


def request(state: State, sid: str) -> object:
    (found,) = [r for r in state.requests.values() if r.shipment_id == sid]
    return found


async def queue(state: State, clock: FixedClock, *ids: str) -> str:
    queued = await waybills.create_waybills(FakeUnitOfWork(state, clock), CreateWaybills(ids))
    return queued.batch_id


async def test_a_batch_is_queued_at_once_and_its_waybills_made_by_the_runner(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Issued(waybill("SF1"))], "s-2": [Issued(waybill("SF2"))]}
    await queue(state, clock, "s-1", "s-2")
    assert all(r.state is WaybillState.QUEUED for r in state.requests.values())
    assert await round_of(state, clock, carriers) == 2
    assert {sid: s.waybill.waybill_no for sid, s in state.shipments.items() if s.waybill} == {
        "s-1": "SF1",
        "s-2": "SF2",
    }
    assert [e.kind for e in state.published] == ["WaybillCreated", "WaybillCreated"]


async def test_a_failure_is_retried_after_its_back_off_and_not_before(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Failed("A1009 目标服务异常或不可达"), Issued(waybill("SF1"))]}
    await queue(state, clock, "s-1")
    await round_of(state, clock, carriers)
    assert request(state, "s-1").state is WaybillState.RETRYING  # type: ignore[attr-defined]
    clock.advance(timedelta(seconds=1))
    assert await round_of(state, clock, carriers) == 0
    clock.advance(timedelta(seconds=1))
    assert await round_of(state, clock, carriers) == 1
    assert request(state, "s-1").attempts == 2  # type: ignore[attr-defined]
    assert state.shipments["s-1"].waybill is not None


async def test_after_a_timeout_the_carrier_is_asked_first_and_its_waybill_taken_without_a_second_create(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Failed("no answer within 5s", uncertain=True)]}
    carriers.lookups = {"s-1": [Issued(waybill("SF-MADE"))]}
    await queue(state, clock, "s-1")
    await round_of(state, clock, carriers)
    clock.advance(timedelta(seconds=5))
    await round_of(state, clock, carriers)
    assert carriers.calls == [("create", "s-1"), ("lookup", "s-1")]
    assert state.shipments["s-1"].waybill.waybill_no == "SF-MADE"  # type: ignore[union-attr]


async def test_after_a_timeout_the_carrier_saying_no_waybill_lets_the_retry_create_one(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Failed("connection lost", uncertain=True), Issued(waybill("SF1"))]}
    carriers.lookups = {"s-1": [None]}
    await queue(state, clock, "s-1")
    await round_of(state, clock, carriers)
    clock.advance(timedelta(seconds=5))
    await round_of(state, clock, carriers)
    assert carriers.calls == [("create", "s-1"), ("lookup", "s-1"), ("create", "s-1")]


async def test_a_lookup_that_fails_never_creates_blind(state: State, clock: FixedClock) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Failed("no answer", uncertain=True)]}
    carriers.lookups = {"s-1": [Failed("no answer", uncertain=True), None]}
    carriers.creates["s-1"].append(Issued(waybill("SF1")))
    await queue(state, clock, "s-1")
    for _ in range(3):
        await round_of(state, clock, carriers)
        clock.advance(timedelta(minutes=1))
    assert carriers.calls == [("create", "s-1"), ("lookup", "s-1"), ("lookup", "s-1"), ("create", "s-1")]


async def test_the_last_failed_attempt_is_a_dead_letter_with_its_event_and_alert_and_replays(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.creates = {"s-1": [Failed("A1009")] * 3 + [Issued(waybill("SF1"))]}
    await queue(state, clock, "s-1")
    for _ in range(3):
        await round_of(state, clock, carriers)
        clock.advance(timedelta(minutes=1))
    assert request(state, "s-1").state is WaybillState.DEAD  # type: ignore[attr-defined]
    failed = [e for e in state.published if isinstance(e, WaybillFailed)]
    alerts = [e for e in state.published if isinstance(e, AlertRaised)]
    assert [(f.shipment_id, f.attempts, f.reason) for f in failed] == [("s-1", 3, "A1009")]
    assert alerts[0].kind == "waybill_dead_letter" and alerts[0].order_id == "o-s-1"
    again = await waybills.replay_dead_letter(FakeUnitOfWork(state, clock), "s-1")
    assert (again.state, again.attempts) == (WaybillState.QUEUED, 0)
    await round_of(state, clock, carriers)
    assert state.shipments["s-1"].waybill is not None


async def test_shipments_with_a_waybill_or_under_way_elsewhere_are_skipped(
    state: State, clock: FixedClock
) -> None:
    state.shipments["s-1"].waybill = waybill("SF-OLD")
    first = await queue(state, clock, "s-2")
    queued = await waybills.create_waybills(FakeUnitOfWork(state, clock), CreateWaybills(("s-1", "s-2")))
    assert (queued.queued, queued.skipped) == (0, 2)
    reasons = sorted(r.last_error for r in state.requests.values() if r.batch_id == queued.batch_id)
    assert reasons == ["already being waybilled in batch " + first, "already has waybill SF-OLD"]


async def test_bad_batches_are_refused_by_name(state: State, clock: FixedClock) -> None:
    with pytest.raises(NotFound, match="shipment s-9 not found"):
        await queue(state, clock, "s-1", "s-9")
    with pytest.raises(InvalidArgument, match="at most 1000 shipments"):
        await queue(state, clock, *[f"s-{n}" for n in range(1001)])
    state.shipments["s-2"].cancel(T0)
    with pytest.raises(FailedPrecondition, match="order o-s-2 is cancelled, no waybill for it"):
        await queue(state, clock, "s-1", "s-2")
    assert state.requests == {}


async def test_a_request_abandoned_in_flight_is_taken_again_after_its_lease_and_asked_first(
    state: State, clock: FixedClock
) -> None:
    carriers = ScriptedCarriers()
    carriers.lookups = {"s-1": [Issued(waybill("SF1"))]}
    await queue(state, clock, "s-1")
    await waybills.claim(FakeUnitOfWork(state, clock), timedelta(seconds=120), 10)  # then the worker died
    assert await round_of(state, clock, carriers) == 0
    clock.advance(timedelta(seconds=121))
    assert await round_of(state, clock, carriers) == 1
    assert carriers.calls == [("lookup", "s-1")]
