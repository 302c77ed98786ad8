"""Refusals that name the field they are about, for the FAILED_PRECONDITION cases of after-sales.

`services.kit.errors.FailedPrecondition` carries a message only; a refund above what is left or a
return for an unshipped order must still say which field of the request it is about, so these keep
the field apart (the message stays `field: problem`, the same shape as InvalidArgument's)."""

from __future__ import annotations

from services.kit.errors import FailedPrecondition


class Refused(FailedPrecondition):
    """A well-formed request the state of the order or ticket does not allow, e.g. `lines[0].quantity`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class IllegalTransition(FailedPrecondition):
    """A ticket asked to move where its transition table does not go."""

    def __init__(self, ticket_id: str, kind: str, current: str, target: str) -> None:
        super().__init__(
            f"ticket {ticket_id} ({kind}) is {current}: {current} → {target} is not a legal transition"
        )
        self.current = current
        self.target = target
