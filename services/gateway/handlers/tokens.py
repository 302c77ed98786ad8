"""IssueToken: a service account's client credentials exchanged for a short-lived token of kind service."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import ChecksBusy, TooManyAttempts
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import AuthError, Caller
from services.gateway.handlers.ports import AuditLog, FailureThrottle, SecretChecks
from services.kit.errors import Unauthenticated, Unavailable

TOKEN_TTL_SECONDS = 3600
METHOD = f"/{GATEWAY}/IssueToken"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class Tokens:
    def __init__(
        self,
        jwt: auth.JwtSettings,
        accounts: Mapping[str, auth.ServiceAccount],
        checker: SecretChecks,
        throttle: FailureThrottle,
        attempts: AuditLog,
        wall: Callable[[], float],
    ) -> None:
        self.jwt = jwt
        self.accounts = accounts
        self.checker = checker
        self.throttle = throttle
        self.attempts = attempts
        self.wall = wall

    async def issue(self, client_id: str, secret: str, caller: Caller) -> IssuedToken:
        account = await self._account(client_id, secret, caller)
        token = auth.issue_token(
            self.jwt, account.client_id, account.roles, self.wall(), TOKEN_TTL_SECONDS, kind="service"
        )
        return IssuedToken(token, TOKEN_TTL_SECONDS)

    async def _account(self, client_id: str, secret: str, caller: Caller) -> auth.ServiceAccount:
        """The throttle first (no hashing for a blocked id or address), then the capped, off-loop check."""
        wait = await self.throttle.blocked_for(client_id, caller.source_ip)
        if wait > 0:
            raise TooManyAttempts(wait, f"too many failed attempts; retry after {math.ceil(wait)}s")
        try:
            account: auth.ServiceAccount = await self.checker.authenticate(self.accounts, client_id, secret)
        except ChecksBusy:
            raise Unavailable("too many credential checks at once; retry") from None
        except AuthError:
            await self.throttle.failed(client_id, caller.source_ip)
            self.attempts.failed_attempt(caller, METHOD, "UNAUTHENTICATED", AttemptReason.CLIENT_SECRET)
            raise Unauthenticated("authentication required") from None
        await self.throttle.succeeded(client_id)
        return account
