"""IssueToken on fakes: the throttle before any hashing, failures counted, a right secret gets a token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import ChecksBusy, TooManyAttempts
from services.gateway.handlers.tokens import METHOD, TOKEN_TTL_SECONDS, Tokens
from services.kit.errors import Unauthenticated, Unavailable
from tests.unit.gateway.fakes import FakeAudit, caller
from tests.unit.gateway.test_auth import NOW, hs_settings

ACCOUNTS = {
    "svc-1": auth.ServiceAccount("svc-1", auth.hash_secret("right", iterations=1), frozenset({"service"}))
}


class FakeThrottle:
    def __init__(self, blocked: float = 0.0) -> None:
        self.blocked = blocked
        self.failures: list[tuple[str, str]] = []
        self.cleared: list[str] = []

    async def blocked_for(self, client_id: str, address: str) -> float:
        return self.blocked

    async def failed(self, client_id: str, address: str) -> float:
        self.failures.append((client_id, address))
        return 0.0

    async def succeeded(self, client_id: str) -> None:
        self.cleared.append(client_id)


class InlineChecker:
    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.checked = 0

    async def authenticate(self, accounts: Mapping[str, Any], client_id: str, secret: str) -> Any:
        if self.busy:
            raise ChecksBusy()
        self.checked += 1
        return auth.authenticate_client(accounts, client_id, secret)


def tokens(
    throttle: FakeThrottle | None = None, checker: InlineChecker | None = None
) -> tuple[Tokens, FakeAudit, FakeThrottle, InlineChecker]:
    audit, throttle, checker = FakeAudit(), throttle or FakeThrottle(), checker or InlineChecker()
    return Tokens(hs_settings(), ACCOUNTS, checker, throttle, audit, lambda: NOW), audit, throttle, checker


async def test_a_right_secret_gets_a_service_token_and_clears_its_client_ids_failures() -> None:
    issuer, audit, throttle, _ = tokens()

    issued = await issuer.issue("svc-1", "right", caller(""))

    principal = auth.verify_jwt(issued.access_token, hs_settings(), NOW)
    assert (principal.subject, principal.kind, principal.roles) == (
        "svc-1",
        "service",
        frozenset({"service"}),
    )
    assert issued.expires_in == TOKEN_TTL_SECONDS
    assert throttle.cleared == ["svc-1"] and not throttle.failures and not audit.attempts


async def test_a_wrong_secret_is_counted_against_id_and_address_and_audited_by_reason_only() -> None:
    issuer, audit, throttle, _ = tokens()

    with pytest.raises(Unauthenticated, match="authentication required"):
        await issuer.issue("svc-1", "wrong", caller(""))

    assert throttle.failures == [("svc-1", "192.0.2.7")]
    assert audit.attempts == [("", METHOD, "UNAUTHENTICATED", AttemptReason.CLIENT_SECRET)]


async def test_a_blocked_id_or_address_is_refused_with_its_wait_before_any_secret_is_hashed() -> None:
    issuer, _, _, checker = tokens(throttle=FakeThrottle(blocked=2.3))

    with pytest.raises(TooManyAttempts) as refused:
        await issuer.issue("svc-1", "right", caller(""))

    assert refused.value.retry_after == 2.3
    assert refused.value.message == "too many failed attempts; retry after 3s"
    assert checker.checked == 0


async def test_a_check_over_the_concurrency_cap_is_unavailable_and_counts_no_failure() -> None:
    issuer, audit, throttle, _ = tokens(checker=InlineChecker(busy=True))

    with pytest.raises(Unavailable):
        await issuer.issue("svc-1", "right", caller(""))

    assert not throttle.failures and not audit.attempts
