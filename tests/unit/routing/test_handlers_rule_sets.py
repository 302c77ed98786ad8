from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.clock import FixedClock
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.routing.domain.commands import PlanCommand
from services.routing.domain.defaults import default_rules
from services.routing.domain.documents import to_document
from services.routing.domain.events import RuleSetActivated
from services.routing.domain.geography import normalise
from services.routing.domain.model import RouteLine
from services.routing.domain.regression import ExpectedDecision
from services.routing.domain.rules import RuleSet, RuleSetStatus
from services.routing.handlers.planning import plan_fulfilment
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.handlers.rule_sets import (
    activate,
    dry_run,
    ensure_default_rules,
    get_rule_set,
    put_expected_decisions,
    save_draft,
    set_shadow,
)
from tests.unit.routing.fakes import FakeStock, FakeStore, as_stored

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
HANGZHOU_TO_SHANGHAI = ExpectedDecision(
    "Hangzhou → Shanghai", normalise("浙江", "杭州"), (RouteLine("X", 1),), expect_warehouse="WH-SH"
)


def without_zhejiang_at_shanghai(rules: RuleSet) -> RuleSet:
    return replace(
        rules,
        coverage=tuple(
            replace(c, regions=tuple(r for r in c.regions if r != "Zhejiang"))
            if c.warehouse_id == "WH-SH"
            else c
            for c in rules.coverage
        ),
    )


async def routing() -> tuple[FakeStore, FixedClock]:
    clock = FixedClock(NOW)
    store = FakeStore(clock)
    await ensure_default_rules(store.uow())
    return store, clock


async def test_a_new_installation_has_the_default_rule_set_active_and_keeps_it_on_restart() -> None:
    store, _ = await routing()
    await ensure_default_rules(store.uow())

    active = await get_rule_set(store.uow(), 0)

    assert (active.version, active.status, active.note) == (1, RuleSetStatus.ACTIVE, "default rule set")
    assert active.document == as_stored(to_document(default_rules())) and list(store.state.rule_sets) == [1]


async def test_a_draft_is_saved_as_the_next_version_and_the_active_rule_set_stays() -> None:
    store, _ = await routing()

    draft = await save_draft(store.uow(), json.dumps(to_document(default_rules())), "n" * 600)

    assert (draft.version, draft.status, draft.created_at, draft.activated_at) == (
        2,
        RuleSetStatus.DRAFT,
        NOW,
        None,
    )
    assert len(draft.note) == 500
    assert await get_rule_set(store.uow(), 2) == draft
    assert (await get_rule_set(store.uow(), 0)).version == 1
    with pytest.raises(NotFound):
        await get_rule_set(store.uow(), 3)


@pytest.mark.parametrize(
    ("document_json", "field"),
    [
        ("{not json", "document_json"),
        ("[]", "document_json"),
        (json.dumps({**to_document(default_rules()), "warehouses": []}), "document_json.warehouses"),
        (
            json.dumps(
                {
                    **to_document(default_rules()),
                    "carrier_rules": [{"name": "x", "carrier": "NOPE", "service": "s"}],
                }
            ),
            "document_json.carrier_rules[0].carrier",
        ),
    ],
)
async def test_a_draft_that_is_not_a_valid_rule_set_is_refused_naming_the_field(
    document_json: str, field: str
) -> None:
    store, _ = await routing()

    with pytest.raises(InvalidArgument) as refused:
        await save_draft(store.uow(), document_json, "")

    assert refused.value.field == field
    assert list(store.state.rule_sets) == [1]


async def test_activating_a_draft_retires_the_active_one_makes_parked_orders_due_and_is_announced() -> None:
    store, clock = await routing()
    cache = RuleSetCache()
    parked = await plan_fulfilment(
        store.uow, cache, FakeStock(), PlanCommand("o-1", "浙江", "杭州", (RouteLine("TEA", 1),))
    )
    assert parked.decision.parked and store.state.parked["o-1"].retry_due is None
    draft = await save_draft(store.uow(), json.dumps(to_document(default_rules())), "same rules")
    clock.advance(timedelta(minutes=5))

    activated, checked = await activate(store.uow, cache, draft.version)

    assert (activated.version, activated.status, activated.activated_at) == (
        2,
        RuleSetStatus.ACTIVE,
        clock.now(),
    )
    assert checked.passed and checked.replayed == 1 and not checked.changed
    assert store.state.rule_sets[1].status is RuleSetStatus.RETIRED
    assert store.state.parked["o-1"].retry_due == clock.now()
    assert store.published[-1] == RuleSetActivated(2, 1)
    assert (await cache.active(store.uow())).version == 2, "the cache is dropped on activation"


async def test_a_draft_that_breaks_an_expected_decision_is_not_activated() -> None:
    store, _ = await routing()
    assert await put_expected_decisions(store.uow(), [HANGZHOU_TO_SHANGHAI]) == 1
    broken = without_zhejiang_at_shanghai(default_rules())
    draft = await save_draft(store.uow(), json.dumps(to_document(broken)), "new coverage table")

    checked = await dry_run(store.uow(), draft.version, 0)
    assert not checked.passed
    assert [(c.case.name, c.passed, c.actual_warehouses) for c in checked.cases] == [
        ("Hangzhou → Shanghai", False, ("WH-WH",))
    ]
    with pytest.raises(FailedPrecondition) as refused:
        await activate(store.uow, RuleSetCache(), draft.version)

    assert "Hangzhou → Shanghai: expected WH-SH, got WH-WH" in refused.value.message
    assert store.state.rule_sets[1].status is RuleSetStatus.ACTIVE
    assert store.state.rule_sets[2].status is RuleSetStatus.DRAFT
    assert not any(isinstance(e, RuleSetActivated) for e in store.published)


async def test_only_a_draft_can_be_activated() -> None:
    store, _ = await routing()
    draft = await save_draft(store.uow(), json.dumps(to_document(default_rules())), "")
    await activate(store.uow, RuleSetCache(), draft.version)

    for version in (1, 2):  # retired, active
        with pytest.raises(FailedPrecondition):
            await activate(store.uow, RuleSetCache(), version)
    with pytest.raises(NotFound):
        await activate(store.uow, RuleSetCache(), 9)
    assert [e.version for e in store.published if isinstance(e, RuleSetActivated)] == [2]


async def test_expected_decisions_need_unique_names() -> None:
    store, _ = await routing()

    with pytest.raises(InvalidArgument) as refused:
        await put_expected_decisions(store.uow(), [HANGZHOU_TO_SHANGHAI, HANGZHOU_TO_SHANGHAI])

    assert refused.value.field == "cases" and not store.state.expected


async def test_a_shadow_rule_set_is_a_draft_and_refusing_one_keeps_the_shadow_running() -> None:
    store, _ = await routing()
    draft = await save_draft(store.uow(), json.dumps(to_document(default_rules())), "")
    cache = RuleSetCache()

    assert await set_shadow(store.uow(), cache, draft.version) == draft.version
    with pytest.raises(FailedPrecondition):
        await set_shadow(store.uow(), cache, 1)  # the active one

    assert [v for v, r in store.state.rule_sets.items() if r.shadow] == [draft.version]
    shadow = await cache.shadow(store.uow())
    assert shadow is not None and shadow.version == draft.version
    assert await set_shadow(store.uow(), cache, 0) == 0
    assert await cache.shadow(store.uow()) is None
    with pytest.raises(InvalidArgument):
        await set_shadow(store.uow(), cache, -1)
