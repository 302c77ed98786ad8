"""SignIn on fakes: the throttle before any hashing, a wrong name costs a hash like a wrong password,
failures counted and audited, a right password gets a user token with the user's roles and customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import ChecksBusy, TooManyAttempts
from services.gateway.domain.users import ConsoleUser
from services.gateway.handlers.users import METHOD, SESSION_TTL_SECONDS, ConsoleUsers
from services.kit.errors import InvalidArgument, Unauthenticated, Unavailable
from tests.unit.gateway.fakes import FakeAudit, caller
from tests.unit.gateway.test_auth import NOW, hs_settings
from tests.unit.gateway.test_handlers_tokens import FakeThrottle


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[str, ConsoleUser] = {}

    async def get(self, subject: str) -> ConsoleUser | None:
        return self.rows.get(subject)

    async def put(self, user: ConsoleUser, now: datetime) -> bool:
        created = user.subject not in self.rows
        self.rows[user.subject] = user
        return created


class FakeUow:
    def __init__(self, users: FakeUsers) -> None:
        self.users = users
        self.committed = 0

    async def __aenter__(self) -> FakeUow:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def commit(self) -> None:
        self.committed += 1


class InlineMatcher:
    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.hashed: list[str | None] = []

    async def authenticate(self, accounts: Any, client_id: str, secret: str) -> Any:
        raise AssertionError("not used by sign-in")

    async def matches(self, secret: str, stored_hash: str | None) -> bool:
        if self.busy:
            raise ChecksBusy()
        self.hashed.append(stored_hash)
        return auth.check_password(secret, stored_hash)


def desk(
    throttle: FakeThrottle | None = None, matcher: InlineMatcher | None = None
) -> tuple[ConsoleUsers, FakeUsers, FakeAudit, FakeThrottle, InlineMatcher]:
    users, audit = FakeUsers(), FakeAudit()
    throttle, matcher = throttle or FakeThrottle(), matcher or InlineMatcher()
    handler = ConsoleUsers(hs_settings(), lambda: FakeUow(users), matcher, throttle, audit, lambda: NOW)
    users.rows["buyer-42"] = ConsoleUser(
        "buyer-42", auth.hash_secret("right-password", iterations=1), frozenset({"customer"}), "buyer-42"
    )
    return handler, users, audit, throttle, matcher


async def test_a_right_password_gets_a_user_token_with_the_users_roles_and_customer() -> None:
    handler, _, audit, throttle, _ = desk()
    session = await handler.sign_in("buyer-42", "right-password", caller(""))
    principal = auth.verify_jwt(session.access_token, hs_settings(), NOW)
    assert (principal.subject, principal.kind, principal.roles, principal.customer_id) == (
        "buyer-42",
        "user",
        frozenset({"customer"}),
        "buyer-42",
    )
    assert session.expires_in == SESSION_TTL_SECONDS
    assert throttle.cleared == ["user:buyer-42"] and not audit.attempts


async def test_a_wrong_password_and_an_unknown_name_are_refused_alike_each_after_a_hash() -> None:
    handler, _, audit, throttle, matcher = desk()
    refusals = []
    for name, password in (("buyer-42", "wrong-password"), ("nobody", "right-password")):
        with pytest.raises(Unauthenticated) as refused:
            await handler.sign_in(name, password, caller(""))
        refusals.append(refused.value.message)
    assert refusals == ["wrong user name or password"] * 2
    assert len(matcher.hashed) == 2 and matcher.hashed[1] is None  # the unknown name hashed too
    assert throttle.failures == [("user:buyer-42", "192.0.2.7"), ("user:nobody", "192.0.2.7")]
    assert [(a[1], a[3]) for a in audit.attempts] == [(METHOD, AttemptReason.PASSWORD)] * 2


async def test_a_blocked_name_or_address_is_refused_before_any_hash_and_busy_checks_say_retry() -> None:
    handler, _, _, _, matcher = desk(throttle=FakeThrottle(blocked=4.2))
    with pytest.raises(TooManyAttempts) as blocked:
        await handler.sign_in("buyer-42", "right-password", caller(""))
    assert blocked.value.retry_after == 4.2 and not matcher.hashed
    busy, *_ = desk(matcher=InlineMatcher(busy=True))
    with pytest.raises(Unavailable):
        await busy.sign_in("buyer-42", "right-password", caller(""))


async def test_a_user_is_kept_as_a_hash_and_a_bad_one_changes_nothing() -> None:
    handler, users, *_ = desk()
    wanted, created = await handler.put("ana", "long-enough-pass", ["ops"], "")
    assert wanted.subject == "ana"
    assert created and users.rows["ana"].roles == frozenset({"ops"})
    assert "long-enough-pass" not in users.rows["ana"].password_hash
    assert auth.check_password("long-enough-pass", users.rows["ana"].password_hash)
    with pytest.raises(InvalidArgument):
        await handler.put("ana", "short", ["ops"], "")
    assert auth.check_password("long-enough-pass", users.rows["ana"].password_hash)
