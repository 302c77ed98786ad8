"""Auto-approval rule sets, versioned like routing's: a draft is stored, dry-run against past tickets
(which decisions would change), then activated; one version decides new tickets at a time."""

from __future__ import annotations

from typing import Any

from services.aftersales.domain import approval
from services.aftersales.domain.approval import DryRun, RuleSetStatus, RuleSetVersion
from services.aftersales.handlers.ports import UnitOfWork
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_DRY_RUN = 5000


async def put_draft(uow: UnitOfWork, document: Any, note: str, by: str) -> RuleSetVersion:
    if len(note) > 500:
        raise InvalidArgument("note", "at most 500 characters")
    async with uow:
        version = await uow.rule_sets.next_version()
        drafted = approval.draft(version, document, note, uow.clock.now())
        await uow.rule_sets.save(drafted, by)
        await uow.commit()
    return drafted


async def list_versions(uow: UnitOfWork) -> list[RuleSetVersion]:
    async with uow:
        return await uow.rule_sets.all()


async def _version(uow: UnitOfWork, version: int, *, lock: bool = False) -> RuleSetVersion:
    if version <= 0:
        raise InvalidArgument("version", "must be a rule set version (1, 2, …)")
    found = await uow.rule_sets.get(version, lock=lock)
    if found is None:
        raise NotFound(f"rule set {version} not found")
    return found


async def dry_run(uow: UnitOfWork, version: int, limit: int) -> DryRun:
    if not 0 <= limit <= MAX_DRY_RUN:
        raise InvalidArgument("limit", f"between 1 and {MAX_DRY_RUN} (0: 500)")
    async with uow:
        candidate = await _version(uow, version)
        active = await uow.rule_sets.active()
        past = await uow.tickets.decided(limit or 500)
    current = active.rule_set() if active is not None else approval.default_rule_set()
    return approval.dry_run(candidate.rule_set(), current, past)


async def activate(uow: UnitOfWork, version: int) -> RuleSetVersion:
    async with uow:
        candidate = await _version(uow, version, lock=True)
        if candidate.status is RuleSetStatus.ACTIVE:
            return candidate
        active = await uow.rule_sets.active()
        if active is not None and active.version > candidate.version:
            raise FailedPrecondition(
                f"rule set {active.version} is active and newer than {candidate.version}: draft it again"
            )
        activated, retired = approval.activate(candidate, active, uow.clock.now())
        if retired is not None:
            await uow.rule_sets.save(retired)
        await uow.rule_sets.save(activated)
        await uow.commit()
    return activated
