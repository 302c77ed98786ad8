from __future__ import annotations

import asyncio

import grpc
import pytest

from oms.common.v1 import common_pb2
from services.kit import status
from services.kit.batching import Batcher, answer_each, distinct
from services.kit.errors import InvalidArgument, NotFound


async def test_items_submitted_within_the_linger_go_in_one_call_and_each_gets_its_own_answer() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        return [NotFound(f"no {item}") if item == 3 else item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(flush, linger=0.01, max_batch=64)
    answers = await asyncio.gather(*(batcher.submit(n) for n in range(5)), return_exceptions=True)
    assert calls == [[0, 1, 2, 3, 4]]
    assert answers[:3] == [0, 10, 20] and answers[4] == 40
    assert isinstance(answers[3], NotFound)


async def test_a_full_batch_is_sent_at_once_without_waiting_for_the_linger() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, linger=30, max_batch=3)
    answers = await asyncio.wait_for(asyncio.gather(*(batcher.submit(n) for n in range(6))), timeout=2)
    assert answers == list(range(6)) and calls == [[0, 1, 2], [3, 4, 5]]


async def test_a_call_that_fails_whole_fails_every_item_of_it_and_the_next_batch_is_new() -> None:
    fail = True

    async def flush(items: list[int]) -> list[int | BaseException]:
        if fail:
            raise ConnectionError("peer down")
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, linger=0.001)
    answers = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(answer, ConnectionError) for answer in answers)
    fail = False
    assert await batcher.submit(7) == 7


async def test_an_answer_of_the_wrong_length_fails_the_batch_rather_than_misdeliver() -> None:
    async def flush(items: list[int]) -> list[int | BaseException]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(flush, linger=0.001)
    answers = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(answer, RuntimeError) for answer in answers)


def test_a_batcher_refuses_a_batch_size_past_the_calls_limit() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(lambda items: asyncio.sleep(0, []), max_batch=501)


async def test_answer_each_runs_every_item_and_keeps_each_items_error() -> None:
    running = 0
    most = 0

    async def handle(item: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1
        if item % 2:
            raise InvalidArgument("x", f"odd {item}")
        return item

    answers = await answer_each(list(range(10)), handle, concurrency=3)
    assert [a for a in answers if not isinstance(a, Exception)] == [0, 2, 4, 6, 8]
    assert next(str(a) for a in answers if isinstance(a, Exception)).endswith("odd 1")
    assert most == 3


@pytest.mark.parametrize(
    ("keys", "field"), [([], "items"), (["a", "b", "a"], "items[2]"), ([str(n) for n in range(501)], "items")]
)
def test_a_batch_names_each_item_once_and_holds_at_most_500(keys: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        distinct(keys, "items")
    assert refused.value.field == field


async def test_a_group_commit_sends_at_once_when_idle_and_gathers_what_arrives_while_it_runs() -> None:
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int | BaseException]:
        calls.append(items)
        if len(calls) == 1:
            await release.wait()
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, linger=0, max_batch=3, in_flight=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.01)
    assert calls == [[0]]  # nothing else was waiting: it went alone, at once
    later = [asyncio.ensure_future(batcher.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0.01)
    assert calls == [[0]]  # the one slot is taken: the others wait, however long
    release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), timeout=2) == list(range(6))
    assert calls == [[0], [1, 2, 3], [4, 5]]  # then in batches of at most max_batch, one at a time


async def test_a_group_commit_never_runs_more_calls_than_it_is_allowed() -> None:
    running = peak = 0

    async def flush(items: list[int]) -> list[int | BaseException]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush, linger=0, max_batch=4, in_flight=2)
    answers = await asyncio.gather(*(batcher.submit(n) for n in range(40)))
    assert answers == list(range(40)) and peak == 2


def test_an_item_error_carries_its_single_calls_code_and_the_caller_reads_it_back() -> None:
    refused = status.item_error(
        NotFound("order o-1 not found"), common_pb2.ItemError, common_pb2.FieldViolation
    )
    assert status.code_of(refused.code) is grpc.StatusCode.NOT_FOUND
    bad = status.item_error(
        InvalidArgument("qty", "must be positive"), common_pb2.ItemError, common_pb2.FieldViolation
    )
    assert status.code_of(bad.code) is grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in bad.violations] == [("qty", "must be positive")]
    assert status.code_of(999) is grpc.StatusCode.UNKNOWN  # a number gRPC does not have
