"""Failed attempts are counted per window and key, and only closed windows are handed out."""

from __future__ import annotations

from services.gateway.domain.attempts import OVERFLOW_ADDRESS, FailedAttempts


def test_attempts_of_one_key_in_one_window_are_one_count() -> None:
    attempts = FailedAttempts(window_seconds=60)
    for second in range(5):
        attempts.add(120 + second, "10.0.0.1", "/s/M", "UNAUTHENTICATED", "bearer_token")
    attempts.add(130, "10.0.0.2", "/s/M", "UNAUTHENTICATED", "bearer_token")

    assert attempts.take_closed(179) == []
    closed = dict((key.address, count) for key, count in attempts.take_closed(180))

    assert closed == {"10.0.0.1": 5, "10.0.0.2": 1}
    assert len(attempts) == 0


def test_a_new_window_starts_a_new_count_and_open_windows_are_kept() -> None:
    attempts = FailedAttempts(window_seconds=60)
    attempts.add(59, "a", "m", "PERMISSION_DENIED", "role_not_allowed", "agent-1", "user")
    attempts.add(61, "a", "m", "PERMISSION_DENIED", "role_not_allowed", "agent-1", "user")

    (taken,) = attempts.take_closed(61)

    assert (taken[0].window_start, taken[0].principal, taken[1]) == (0, "agent-1", 1)
    assert len(attempts) == 1
    assert [count for _, count in attempts.take_closed(61, everything=True)] == [1]


def test_past_the_key_limit_attempts_are_counted_under_one_overflow_key() -> None:
    attempts = FailedAttempts(window_seconds=60, max_keys=2)
    for address in ("a", "b", "c", "d", "e"):
        attempts.add(1, address, "m", "UNAUTHENTICATED", "bearer_token")

    counts = {key.address: count for key, count in attempts.take_closed(60)}

    assert counts == {"a": 1, "b": 1, OVERFLOW_ADDRESS: 3}


def test_counts_whose_write_failed_are_put_back_and_added_to() -> None:
    attempts = FailedAttempts(window_seconds=60)
    attempts.add(1, "a", "m", "UNAUTHENTICATED", "client_secret")
    taken = attempts.take_closed(60)
    attempts.add(2, "a", "m", "UNAUTHENTICATED", "client_secret")

    attempts.put_back(taken)

    assert [count for _, count in attempts.take_closed(60)] == [2]
