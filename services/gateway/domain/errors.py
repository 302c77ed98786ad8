"""The gateway's own failures, beside the kit's plain errors."""

from __future__ import annotations

from services.kit.errors import ResourceExhausted


class UpstreamFailure(Exception):
    """A service the gateway called answered with an error. Not a `DomainError`: unless a use case says
    what it means for its caller, it reaches the caller as an internal error (and its code the audit).

    `code` is the status code's name (`NOT_FOUND`, `DEADLINE_EXCEEDED`, …); `violations` the field
    violations the service sent with it."""

    def __init__(self, code: str, details: str, violations: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details
        self.violations = violations

    def first_violation(self) -> tuple[str, str]:
        """The first (field, problem) the service named; from its message (`field: problem`) when it
        sent no field violations."""
        if self.violations:
            return self.violations[0]
        field, _, problem = self.details.partition(": ")
        return field, problem


class TooManyAttempts(ResourceExhausted):
    """A client id or address past its free failed attempts: refused without checking, for a while."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChecksBusy(Exception):
    """Every credential-check slot is taken; the caller should retry shortly."""
