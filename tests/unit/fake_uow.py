"""The one in-memory unit of work every service's handler tests use, as the stores behave: a unit of
work works on a deep copy of the state taken when it begins; `commit` makes that copy the state and
publishes what was emitted; leaving without a commit discards both (a rollback).

A service's fake subclasses it and binds its in-memory repositories to the working copy in `bind`.
The shared state object keeps its identity (a commit copies the working copy's fields onto it), so a
test may hold it; its `published` list receives the committed events.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar


class HasPublished(Protocol):
    published: list[Any]


S = TypeVar("S", bound=HasPublished)


class SnapshotUnitOfWork(Generic[S]):
    # fields of the state that record what the test observed of the calls, kept even on a rollback
    kept_on_rollback: Sequence[str] = ()

    def __init__(self, shared: S) -> None:
        self.shared = shared
        self.committed = False
        self._begin()

    def bind(self, state: S) -> None:
        """Attach the service's repositories to `state`, the working copy."""

    def _begin(self) -> None:
        self.state: S = copy.deepcopy(self.shared)
        self.bind(self.state)

    async def __aenter__(self) -> Self:
        self.committed = False
        self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed:
            for name in self.kept_on_rollback:
                setattr(self.shared, name, getattr(self.state, name))
        self._begin()  # whatever was not committed is gone

    def emit(self, *events: Any) -> None:
        """Events go to the outbox of the working copy: published if it is committed."""
        self.state.published.extend(events)

    async def commit(self) -> None:
        """The working copy becomes the state, and what follows works on a fresh copy of it."""
        for name, value in vars(self.state).items():
            if name == "published":
                self.shared.published[:] = value
            else:
                setattr(self.shared, name, value)
        self.committed = True
        self._begin()
