"""SignIn and PutUser: console users' passwords exchanged for tokens of kind user, and users kept.

Signing in is throttled like IssueToken (per user name and per address, in Redis), hashed off the event
loop under the same cap, and a wrong name costs as much as a wrong password: the answer never says
which one was wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.gateway import auth
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.policy import GATEWAY
from services.gateway.domain.principal import Caller
from services.gateway.domain.users import ConsoleUser, NewUser, new_user
from services.gateway.handlers.credential_checks import CredentialGuard
from services.gateway.handlers.ports import AuditLog, FailureThrottle, SecretChecks, UserUnitOfWork

# a working day: the console keeps the token in memory only, so a reload signs in again
SESSION_TTL_SECONDS = 8 * 3600
METHOD = f"/{GATEWAY}/SignIn"


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_in: int
    user: ConsoleUser


class ConsoleUsers:
    def __init__(
        self,
        jwt: auth.JwtSettings,
        new_uow: Callable[[], UserUnitOfWork],
        checker: SecretChecks,
        throttle: FailureThrottle,
        attempts: AuditLog,
        wall: Callable[[], float],
    ) -> None:
        self.jwt = jwt
        self.new_uow = new_uow
        self.checker = checker
        self.guard = CredentialGuard(
            throttle,
            attempts,
            METHOD,
            AttemptReason.PASSWORD,
            busy="too many sign-ins at once; retry",
            refused="wrong user name or password",
        )
        self.wall = wall

    async def sign_in(self, username: str, password: str, caller: Caller) -> Session:
        name = username[:128]

        async def attempt() -> ConsoleUser | None:
            async with self.new_uow() as uow:
                user = await uow.users.get(name)
            matched = await self.checker.matches(password, user.password_hash if user else None)
            return user if user is not None and matched else None

        user = await self.guard.check(f"user:{name}", caller, attempt)
        ttl = min(SESSION_TTL_SECONDS, self.jwt.max_lifetime_seconds)
        claims = {"customer_id": user.customer_id} if user.customer_id else {}
        token = auth.issue_token(self.jwt, user.subject, user.roles, self.wall(), ttl, kind="user", **claims)
        return Session(token, ttl, user)

    async def put(
        self, subject: str, password: str, roles: Iterable[str], customer_id: str
    ) -> tuple[NewUser, bool]:
        wanted = new_user(subject, password, roles, customer_id)
        hashed = await asyncio.to_thread(auth.hash_secret, wanted.password)  # ≈ 50 ms: off the loop
        stored = ConsoleUser(wanted.subject, hashed, wanted.roles, wanted.customer_id)
        async with self.new_uow() as uow:
            created = await uow.users.put(stored, datetime.fromtimestamp(self.wall(), UTC))
            await uow.commit()
        return wanted, created
