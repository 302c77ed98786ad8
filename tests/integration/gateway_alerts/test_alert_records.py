"""Alert records in the gateway's own Postgres: repeats fold into the open record (once per event id,
also when raced), acknowledgement and resolution with who and when, escalation of the due records only,
the filtered list, and the refusals; one alert through the real bus and consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oms.alerts.v1 import events_pb2
from services.gateway.consumers import record as record_handler
from services.gateway.domain.alert_records import (
    AlertFilter,
    AlertRecord,
    AlertState,
    Raised,
    Recipient,
    Route,
    Severity,
)
from services.gateway.domain.principal import Caller, Principal
from services.gateway.handlers.alert_desk import AlertDesk
from services.gateway.store.alert_records import due_query, owed_escalations_query
from services.gateway.store.uow import GatewayUnitOfWork
from services.kit import bus
from services.kit.consumer import EventConsumer
from services.kit.db import async_url, make_engine
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.status import grpc_code
from tests.conftest import random_ref
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DELAY = timedelta(seconds=30)
CHAIN = (Recipient(role="ops", phone="13800000001"), Recipient(person="li.lei", phone="13800000002"))
ROUTES = (
    Route(("*",), Severity.HIGH, CHAIN, DELAY),
    Route(("*",), 0, (Recipient(role="ops"),)),
)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> float:
        return self.now.timestamp()


@dataclass
class Told:
    """The notifier port, recording who was told of what (the sinks have their own tests); `dies` makes
    the next deliveries fail as a gateway dying after the commit would leave them."""

    calls: list[tuple[str, str, bool]] = field(default_factory=list)
    dies: int = 0

    async def notify(self, record: AlertRecord, escalated: bool) -> bool:
        if self.dies:
            self.dies -= 1
            raise ConnectionError("the gateway died before telling anyone")
        self.calls.append((record.alert_id, record.assigned_to, escalated))
        return True


@pytest.fixture
async def engine(gateway_db: str) -> AsyncIterator[AsyncEngine]:
    created = make_engine(gateway_db, pool_size=10)
    yield created
    await created.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def told() -> Told:
    return Told()


@pytest.fixture
def desk(engine: AsyncEngine, clock: Clock, told: Told) -> AlertDesk:
    return AlertDesk(lambda: GatewayUnitOfWork(engine), ROUTES, told, clock)


def occurrence(
    dedupe_key: str = "",
    severity: int = Severity.HIGH,
    kind: str = "order_exception",
    order_id: str = "o-1",
    source: str = "orders",
    at: datetime = START,
    event_id: str = "",
    roles: tuple[str, ...] = (),
) -> Raised:
    return Raised(
        event_id or random_ref("ev"),
        kind,
        severity,
        source,
        order_id,
        "stuck in PAID",
        dedupe_key,
        "",
        "",
        roles,
        at,
    )


def caller(subject: str = "li.lei") -> Caller:
    return Caller(Principal(subject, "user", frozenset({"ops"})), "10.0.0.1", "r-1")


async def everything(desk: AlertDesk, **filters: object) -> list[AlertRecord]:
    records, _ = await desk.page(AlertFilter(**filters), 500, "")  # type: ignore[arg-type]
    return records


async def test_a_repeat_folds_into_the_open_alert_with_its_count_and_last_seen(
    desk: AlertDesk, told: Told
) -> None:
    first = await desk.raised(occurrence("k-1"))
    second = await desk.raised(occurrence("k-1", at=START + timedelta(minutes=2)))

    assert first is not None and second is not None
    (record,) = await everything(desk)
    assert record.alert_id == first[0].alert_id == second[0].alert_id
    assert (first[1], second[1]) == (True, False)
    assert (record.count, record.first_seen, record.last_seen) == (2, START, START + timedelta(minutes=2))
    assert told.calls == [(record.alert_id, "role:ops", False)]


async def test_an_alert_without_a_dedupe_key_folds_by_kind_order_and_source(desk: AlertDesk) -> None:
    await desk.raised(occurrence())
    await desk.raised(occurrence())
    await desk.raised(occurrence(order_id="o-2"))
    await desk.raised(occurrence(source="routing"))

    counts = sorted(record.count for record in await everything(desk))
    assert counts == [1, 1, 2]


async def test_a_redelivered_event_is_not_counted_twice(desk: AlertDesk, told: Told) -> None:
    once = occurrence("k-1")

    assert await desk.raised(once) is not None
    assert await desk.raised(once) is None

    (record,) = await everything(desk)
    assert record.count == 1
    assert len(told.calls) == 1


async def test_racing_repeats_from_two_replicas_count_into_one_record(
    engine: AsyncEngine, clock: Clock
) -> None:
    replicas = [AlertDesk(lambda: GatewayUnitOfWork(engine), ROUTES, Told(), clock) for _ in range(2)]

    await asyncio.gather(*(replicas[n % 2].raised(occurrence("k-race")) for n in range(20)))

    (record,) = await everything(replicas[0])
    assert record.count == 20


async def test_a_repeat_after_resolution_opens_a_new_alert(desk: AlertDesk, told: Told) -> None:
    first = await desk.raised(occurrence("k-1"))
    assert first is not None
    await desk.resolve(caller(), first[0].alert_id, "fixed the payment")

    again = await desk.raised(occurrence("k-1"))

    assert again is not None and again[1] and again[0].alert_id != first[0].alert_id
    states = sorted(r.state for r in await everything(desk))
    assert states == [AlertState.OPEN, AlertState.RESOLVED]
    assert len(told.calls) == 2


async def test_acknowledging_records_who_and_when_and_stops_the_escalation(
    desk: AlertDesk, clock: Clock, told: Told
) -> None:
    opened = await desk.raised(occurrence("k-1"))
    assert opened is not None and opened[0].escalate_at == START + DELAY
    clock.now = START + timedelta(seconds=10)

    acked = await desk.acknowledge(caller("han.mei"), opened[0].alert_id, "looking")
    clock.now = START + 3 * DELAY

    assert await desk.escalate_due() == 0
    (record,) = await everything(desk)
    assert (record.state, record.acknowledged_by, record.acknowledged_at) == (
        AlertState.ACKNOWLEDGED,
        "han.mei",
        START + timedelta(seconds=10),
    )
    assert (record.acknowledge_note, record.escalate_at, record.assigned_to) == ("looking", None, "role:ops")
    assert acked == record
    assert [escalated for _, _, escalated in told.calls] == [False]


async def test_an_unacknowledged_high_alert_escalates_to_the_next_person_after_the_delay(
    desk: AlertDesk, clock: Clock, told: Told
) -> None:
    opened = await desk.raised(occurrence("k-1"))
    low = await desk.raised(occurrence("k-2", severity=Severity.LOW))
    assert opened is not None and low is not None and low[0].escalate_at is None
    clock.now = START + DELAY - timedelta(seconds=1)
    assert await desk.escalate_due() == 0

    clock.now = START + DELAY
    assert await desk.escalate_due() == 1

    (record,) = await everything(desk, kind="order_exception", min_severity=Severity.HIGH)
    assert (record.assigned_to, record.level, record.escalate_at) == ("person:li.lei", 1, None)
    assert told.calls[-1] == (record.alert_id, "person:li.lei", True)
    clock.now = START + 10 * DELAY
    assert await desk.escalate_due() == 0


async def test_the_escalation_job_reads_only_the_due_and_owed_rows_through_their_indexes(
    engine: AsyncEngine, desk: AlertDesk, clock: Clock
) -> None:
    for n in range(5):
        await desk.raised(occurrence(f"k-{n}", at=START + timedelta(seconds=n * 60)))
    clock.now = START + DELAY + timedelta(seconds=90)

    async with engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        for query, index in (
            (due_query(clock.now, 100), "alerts_escalate_at"),
            (owed_escalations_query(100), "alerts_escalation_owed"),
        ):
            compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {compiled}")))
            assert index in plan, plan

    assert await desk.escalate_due() == 2
    levels = sorted((r.first_seen, r.level) for r in await everything(desk))
    assert [level for _, level in levels] == [1, 1, 0, 0, 0]


async def test_the_list_filters_by_state_severity_kind_source_order_and_assignee_newest_first(
    desk: AlertDesk,
) -> None:
    made = []
    for n, (kind, severity, source, roles) in enumerate(
        [
            ("order_exception", Severity.HIGH, "orders", ()),
            ("low_stock", Severity.MEDIUM, "inventory", ("warehouse_supervisor",)),
            ("order_parked", Severity.MEDIUM, "routing", ()),
            ("paid_out_of_stock", Severity.CRITICAL, "orders", ()),
        ]
    ):
        folded = await desk.raised(
            occurrence(
                kind=kind,
                severity=severity,
                source=source,
                order_id=f"o-{n}",
                roles=roles,
                at=START + timedelta(minutes=n),
            )
        )
        assert folded is not None
        made.append(folded[0])
    await desk.acknowledge(caller(), made[0].alert_id, "")

    assert [r.kind for r in await everything(desk)] == [
        "paid_out_of_stock",
        "order_parked",
        "low_stock",
        "order_exception",
    ]
    assert [r.kind for r in await everything(desk, state=AlertState.OPEN)] == [
        "paid_out_of_stock",
        "order_parked",
        "low_stock",
    ]
    assert [r.kind for r in await everything(desk, min_severity=Severity.HIGH)] == [
        "paid_out_of_stock",
        "order_exception",
    ]
    assert [r.kind for r in await everything(desk, source="orders", kind="paid_out_of_stock")] == [
        "paid_out_of_stock"
    ]
    assert [r.kind for r in await everything(desk, order_id="o-2")] == ["order_parked"]
    assert [r.kind for r in await everything(desk, assigned_to="role:warehouse_supervisor")] == ["low_stock"]
    assert len(await everything(desk, assigned_to="role:ops")) == 4
    assert await everything(desk, assigned_to="person:li.lei") == []

    first, token = await desk.page(AlertFilter(), 3, "")
    rest, last = await desk.page(AlertFilter(), 3, token)
    assert [r.alert_id for r in first + rest] == [r.alert_id for r in await everything(desk)]
    assert token and not last


@pytest.mark.parametrize(
    ("filters", "size", "token", "field_name"),
    [
        (AlertFilter(assigned_to="ops"), 10, "", "assigned_to"),
        (AlertFilter(), 501, "", "page.page_size"),
        (AlertFilter(), 10, "not-a-token", "page.page_token"),
    ],
)
async def test_a_bad_list_request_is_invalid_naming_the_field(
    desk: AlertDesk, filters: AlertFilter, size: int, token: str, field_name: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await desk.page(filters, size, token)
    assert refused.value.field == field_name
    assert grpc_code(refused.value) is grpc.StatusCode.INVALID_ARGUMENT


async def test_an_unknown_alert_is_not_found_and_a_missing_id_is_invalid(desk: AlertDesk) -> None:
    with pytest.raises(NotFound) as unknown:
        await desk.acknowledge(caller(), str(uuid.uuid4()), "")
    with pytest.raises(InvalidArgument) as missing:
        await desk.resolve(caller(), "", "")

    assert grpc_code(unknown.value) is grpc.StatusCode.NOT_FOUND
    assert missing.value.field == "alert_id"


async def test_resolving_twice_or_acknowledging_a_resolved_alert_is_a_failed_precondition(
    desk: AlertDesk,
) -> None:
    folded = await desk.raised(occurrence("k-1"))
    assert folded is not None
    alert_id = folded[0].alert_id
    await desk.resolve(caller(), alert_id, "done")

    for change in (desk.resolve(caller(), alert_id, "again"), desk.acknowledge(caller(), alert_id, "")):
        with pytest.raises(FailedPrecondition) as refused:
            await change
        assert grpc_code(refused.value) is grpc.StatusCode.FAILED_PRECONDITION
    (record,) = await everything(desk)
    assert (record.resolved_by, record.resolution) == ("li.lei", "done")


async def test_alerts_on_the_bus_are_recorded_once_by_the_gateways_consumer(
    engine: AsyncEngine, desk: AlertDesk, clock: Clock, nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    await bus.ensure_stream(js, subject_prefix, "alerts")
    consumer = EventConsumer(
        js,
        engine,
        name="gateway-alerts",
        subject_prefix=subject_prefix,
        subject="alerts.raised",
        handler=record_handler(desk, clock),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        for n in range(3):
            event = events_pb2.AlertRaised(
                event_id=f"ev-{n}",
                kind="low_stock",
                severity=events_pb2.SEVERITY_MEDIUM,
                source="inventory",
                message="SKU-1 at W1 below safety stock",
                dedupe_key="inventory:low_stock:SKU-1:W1",
            )
            await js.publish(
                f"{subject_prefix}.alerts.raised",
                event.SerializeToString(),
                headers={bus.MSG_ID: f"ev-{n}", bus.EVENT_TYPE: "oms.alerts.v1.AlertRaised"},
            )
        await eventually(lambda: consumer.processed == 3)
    finally:
        stop.set()
        await task

    (record,) = await everything(desk)
    assert (record.kind, record.count, record.source, record.assigned_to) == (
        "low_stock",
        3,
        "inventory",
        "role:ops",
    )
    assert record.first_seen == START


async def test_a_first_delivery_lost_after_the_commit_is_made_when_the_bus_redelivers_the_event(
    desk: AlertDesk, told: Told
) -> None:
    once = occurrence("k-1")
    told.dies = 1
    with pytest.raises(ConnectionError):
        await desk.raised(once)
    assert told.calls == []

    assert await desk.raised(once) is None  # counted once, but now told

    (record,) = await everything(desk)
    assert record.count == 1 and record.notified_level == 0
    assert told.calls == [(record.alert_id, "role:ops", False)]
    assert await desk.raised(once) is None
    assert len(told.calls) == 1


async def test_an_escalation_lost_after_its_commit_is_delivered_by_the_next_round(
    desk: AlertDesk, clock: Clock, told: Told
) -> None:
    await desk.raised(occurrence("k-1"))
    clock.now = START + DELAY
    told.dies = 1
    with pytest.raises(ConnectionError):
        await desk.escalate_due()
    (record,) = await everything(desk)
    assert (record.level, record.notified_level) == (1, 0)

    assert await desk.escalate_due() == 0

    (record,) = await everything(desk)
    assert record.notified_level == 1
    assert told.calls[-1] == (record.alert_id, "person:li.lei", True)
    await desk.escalate_due()
    assert len(told.calls) == 2


@dataclass
class Stuck:
    """A sink that hangs until let go (an SMS provider timing out)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)

    async def notify(self, record: AlertRecord, escalated: bool) -> bool:
        await self.release.wait()
        self.calls.append(record.alert_id)
        return True


async def test_a_hanging_sink_does_not_hold_up_the_recording_of_the_alerts_behind_it(
    engine: AsyncEngine, clock: Clock
) -> None:
    sink = Stuck()
    desk = AlertDesk(lambda: GatewayUnitOfWork(engine), ROUTES, sink, clock, deliveries_in_flight=8)
    keys = [random_ref("hang-") for _ in range(5)]
    for key in keys:
        await asyncio.wait_for(desk.raised(occurrence(dedupe_key=key)), timeout=5)
    recorded = {record.fold_key for record in await everything(desk)}
    assert set(keys) <= recorded and sink.calls == []  # all recorded while every delivery hangs
    sink.release.set()
    await desk.drain()
    assert len(sink.calls) == 5
    owed = [record for record in await everything(desk) if record.fold_key in keys and record.owed]
    assert owed == []  # each one's first notice is marked delivered


async def test_folding_keeps_working_once_postgres_plans_the_statement_generically(
    gateway_db: str, clock: Clock
) -> None:
    """A prepared statement's plan turns generic after a few runs on one connection; forced here from
    the first run. The fold's upsert must still find its partial unique index (a bound predicate would
    not: 'no unique or exclusion constraint matching the ON CONFLICT specification')."""
    engine = create_async_engine(
        async_url(gateway_db),
        pool_size=1,
        max_overflow=0,
        connect_args={"server_settings": {"plan_cache_mode": "force_generic_plan"}},
    )
    try:
        desk = AlertDesk(lambda: GatewayUnitOfWork(engine), ROUTES, Told(), clock)
        key = random_ref("generic-")
        for _ in range(8):
            await desk.raised(occurrence(dedupe_key=key))
        [record] = [r for r in await everything(desk) if r.fold_key == key]
        assert record.count == 8
    finally:
        await engine.dispose()


@dataclass
class Refusing:
    """Every sink gives up on the first `refusals` deliveries (SMS down), then delivers."""

    refusals: int = 1
    calls: list[str] = field(default_factory=list)

    async def notify(self, record: AlertRecord, escalated: bool) -> bool:
        self.calls.append(record.alert_id)
        if self.refusals:
            self.refusals -= 1
            return False
        return True


async def test_a_first_notice_no_sink_delivered_stays_owed_and_the_escalation_round_delivers_it(
    engine: AsyncEngine, clock: Clock
) -> None:
    sink = Refusing()
    desk = AlertDesk(lambda: GatewayUnitOfWork(engine), ROUTES, sink, clock)
    key = random_ref("refused-")
    clock.now = datetime.now(UTC).replace(microsecond=0)
    await desk.raised(occurrence(dedupe_key=key, severity=Severity.LOW, at=clock.now))
    [record] = [r for r in await everything(desk) if r.fold_key == key]
    assert record.notified_level is None  # not marked told: the delivery failed
    await desk.escalate_due()
    assert sink.calls == [record.alert_id]  # within the grace: a delivery may still be in flight
    clock.now += timedelta(minutes=2)
    await desk.escalate_due()
    assert sink.calls == [record.alert_id, record.alert_id]
    [after] = [r for r in await everything(desk) if r.fold_key == key]
    assert after.notified_level == 0
    await desk.escalate_due()
    assert len(sink.calls) == 2  # delivered: no longer owed
