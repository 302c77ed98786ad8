"""A waybill request's outcomes: created, retried with jittered exponential back-off, uncertain until
the carrier is asked, dead after its attempts."""

from __future__ import annotations

from datetime import timedelta

from services.logistics.domain.waybills import (
    Failed,
    Issued,
    RetryPolicy,
    WaybillRequest,
    WaybillState,
    abandoned_in_flight,
    after_attempt,
    replayed,
)
from tests.unit.logistics.builders import T0, waybill

POLICY = RetryPolicy(max_attempts=4, base_seconds=2, max_seconds=10, jitter=0.5)


def request() -> WaybillRequest:
    return WaybillRequest("b-1", "s-1", "o-1", "sf", WaybillState.IN_FLIGHT)


def test_the_back_off_doubles_up_to_its_ceiling_within_the_jitter() -> None:
    assert [POLICY.delay(n, 0.5) for n in (1, 2, 3, 4, 5)] == [
        timedelta(seconds=s) for s in (2, 4, 8, 10, 10)
    ]
    assert POLICY.delay(1, 0.0) == timedelta(seconds=1)
    assert POLICY.delay(1, 0.999999) < timedelta(seconds=3)


def test_a_failure_is_retried_later_and_the_last_attempt_is_dead() -> None:
    first = after_attempt(request(), Failed("A1009 目标服务异常或不可达"), T0, POLICY, 0.5)
    assert (first.state, first.attempts, first.next_attempt_at) == (
        WaybillState.RETRYING,
        1,
        T0 + timedelta(seconds=2),
    )
    current = first
    for _ in range(3):
        current = after_attempt(current, Failed("A1009"), T0, POLICY, 0.5)
    assert (current.state, current.attempts, current.next_attempt_at) == (WaybillState.DEAD, 4, None)


def test_a_timeout_stays_uncertain_through_later_clear_failures_until_issued() -> None:
    timed_out = after_attempt(request(), Failed("timeout", uncertain=True), T0, POLICY, 0.5)
    refused = after_attempt(timed_out, Failed("A1009"), T0, POLICY, 0.5)
    assert timed_out.uncertain and refused.uncertain
    done = after_attempt(refused, Issued(waybill("SF9")), T0, POLICY, 0.5)
    assert (done.state, done.uncertain, done.waybill_no, done.last_error) == (
        WaybillState.CREATED,
        False,
        "SF9",
        "",
    )


def test_an_abandoned_attempt_is_uncertain_and_a_replay_starts_its_attempts_anew() -> None:
    assert abandoned_in_flight(request(), T0).uncertain
    dead = after_attempt(request(), Failed("x", uncertain=True), T0, RetryPolicy(max_attempts=1), 0.5)
    again = replayed(dead, T0)
    assert (again.state, again.attempts, again.uncertain) == (WaybillState.QUEUED, 0, True)
