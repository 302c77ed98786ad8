"""IssueToken: a service account's client credentials exchanged for a short-lived token of kind service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import AuthError, Caller
from services.gateway.handlers.credential_checks import CredentialGuard
from services.gateway.handlers.ports import AuditLog, FailureThrottle, SecretChecks

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
        self.guard = CredentialGuard(
            throttle,
            attempts,
            METHOD,
            AttemptReason.CLIENT_SECRET,
            busy="too many credential checks at once; retry",
            refused="authentication required",
        )
        self.wall = wall

    async def issue(self, client_id: str, secret: str, caller: Caller) -> IssuedToken:
        account = await self._account(client_id, secret, caller)
        token = auth.issue_token(
            self.jwt, account.client_id, account.roles, self.wall(), TOKEN_TTL_SECONDS, kind="service"
        )
        return IssuedToken(token, TOKEN_TTL_SECONDS)

    async def _account(self, client_id: str, secret: str, caller: Caller) -> auth.ServiceAccount:
        async def attempt() -> auth.ServiceAccount | None:
            try:
                account: auth.ServiceAccount = await self.checker.authenticate(
                    self.accounts, client_id, secret
                )
            except AuthError:
                return None
            return account

        return await self.guard.check(client_id, caller, attempt)
