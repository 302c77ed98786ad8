"""Rule sets: the default one, drafts, expected decisions, dry runs, activation and the shadow rule set."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.routing.domain import regression
from services.routing.domain.defaults import default_rules
from services.routing.domain.documents import from_document, to_document
from services.routing.domain.events import RuleSetActivated
from services.routing.domain.regression import DryRun, ExpectedDecision
from services.routing.domain.rules import RuleSetStatus, RuleSetVersion
from services.routing.handlers.ports import UnitOfWork
from services.routing.handlers.rule_cache import RuleSetCache

NOTE_LENGTH = 500


async def ensure_default_rules(uow: UnitOfWork) -> None:
    """A new installation starts with the default rule set active."""
    async with uow:
        now = uow.clock.now()
        await uow.rule_sets.add_if_missing(
            RuleSetVersion(
                1, RuleSetStatus.ACTIVE, to_document(default_rules()), "default rule set", now, now
            )
        )
        await uow.commit()


async def get_rule_set(uow: UnitOfWork, version: int) -> RuleSetVersion:
    """The rule set of this version; 0: the active one."""
    async with uow:
        found = await (uow.rule_sets.active() if version == 0 else uow.rule_sets.get(version))
    if found is None:
        raise NotFound(f"rule set {version or 'active'} not found")
    return found


async def save_draft(uow: UnitOfWork, document_json: str, note: str) -> RuleSetVersion:
    try:
        document = json.loads(document_json)
    except json.JSONDecodeError as error:
        raise InvalidArgument("document_json", f"is not JSON: {error.msg} at {error.pos}") from None
    from_document(0, document)
    async with uow:
        draft = RuleSetVersion(
            await uow.rule_sets.next_version(),
            RuleSetStatus.DRAFT,
            document,
            note[:NOTE_LENGTH],
            uow.clock.now(),
        )
        await uow.rule_sets.add(draft)
        await uow.commit()
    return draft


async def put_expected_decisions(uow: UnitOfWork, cases: Sequence[ExpectedDecision]) -> int:
    names = [case.name for case in cases]
    if len(set(names)) != len(names) or not all(names):
        raise InvalidArgument("cases", "every case needs a unique, non-empty name")
    async with uow:
        await uow.expected.replace(cases)
        await uow.commit()
    return len(cases)


async def dry_run(uow: UnitOfWork, version: int, last_decisions: int) -> DryRun:
    """The expected decisions, and the last N real decisions replayed: which would change, and how."""
    if last_decisions < 0:
        raise InvalidArgument("last_decisions", "must not be negative")
    stored = await get_rule_set(uow, version)
    rules = from_document(stored.version, stored.document)
    async with uow:
        cases = await uow.expected.all()
        recent = await uow.decisions.recent(last_decisions or regression.DEFAULT_REPLAYED)
    return regression.dry_run(rules, cases, recent)


async def activate(
    new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, version: int
) -> tuple[RuleSetVersion, DryRun]:
    """Refused when the rule set breaks an expected decision; otherwise it replaces the active one."""
    result = await dry_run(new_uow(), version, regression.DEFAULT_REPLAYED)
    if not result.passed:
        failed = result.failed
        raise FailedPrecondition(
            f"rule set {version} breaks {len(failed)} expected decision(s): "
            + "; ".join(f"{case.case.name}: {case.detail}" for case in failed)
        )
    uow = new_uow()
    async with uow:
        draft = await uow.rule_sets.get(version, lock=True)
        if draft is None:
            raise NotFound(f"rule set {version} not found")
        if draft.status is not RuleSetStatus.DRAFT:
            raise FailedPrecondition(f"rule set {version} is {draft.status}; only a draft can be activated")
        previous = await uow.rule_sets.retire_active()
        now = uow.clock.now()
        activated = await uow.rule_sets.activate(version, now)
        # a new rule set may route what the old one could not (coverage, cold chain): try the parked again
        await uow.parked.mark_all_due(now)
        uow.emit(RuleSetActivated(version, previous or 0))
        await uow.commit()
    cache.invalidate()
    return activated, result


async def set_shadow(uow: UnitOfWork, cache: RuleSetCache, version: int) -> int:
    """Decide every order with this rule set too (0: stop); the active rule set still acts."""
    if version < 0:
        raise InvalidArgument("version", "must not be negative")
    async with uow:
        await uow.rule_sets.clear_shadow()
        if version:
            status = await uow.rule_sets.set_shadow(version)
            if status is None:
                raise NotFound(f"rule set {version} not found")
            if status is RuleSetStatus.ACTIVE:
                raise FailedPrecondition(f"rule set {version} is already active; shadow a draft")
        await uow.commit()
    cache.invalidate()
    return version
