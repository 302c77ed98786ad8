"""Client-secret checks run off the event loop with their own cap; the back-off grows per failure."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway import auth
from services.gateway.credentials import ChecksBusy, SecretChecker, backoff_seconds

# slow enough that a check on the event loop would visibly stall it
SLOW = 400_000


def accounts(secret: str, iterations: int = SLOW) -> dict[str, auth.ServiceAccount]:
    return {"svc": auth.ServiceAccount("svc", auth.hash_secret(secret, iterations), frozenset({"service"}))}


async def test_the_event_loop_keeps_running_while_a_secret_is_hashed() -> None:
    checker = SecretChecker(max_concurrent=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        with pytest.raises(auth.AuthError):
            await asyncio.wait_for(checker.authenticate(accounts("right"), "svc", "wrong"), 30)
    finally:
        ticking.cancel()
        checker.close()
    assert ticks >= 3


async def test_a_check_over_the_cap_is_refused_at_once_instead_of_queueing() -> None:
    checker = SecretChecker(max_concurrent=1)
    known = accounts("right")
    try:
        first = asyncio.create_task(checker.authenticate(known, "svc", "right"))
        await asyncio.sleep(0)
        with pytest.raises(ChecksBusy):
            await checker.authenticate(known, "svc", "right")
        assert (await first).client_id == "svc"
        # the slot is free again once the first check is done
        assert (await checker.authenticate(accounts("right", 1000), "svc", "right")).client_id == "svc"
    finally:
        checker.close()


def test_the_back_off_is_free_then_doubles_up_to_its_cap() -> None:
    assert [backoff_seconds(failures, free=2, cap=8) for failures in range(1, 8)] == [0, 0, 1, 2, 4, 8, 8]
