"""The SMS sandbox as a real process over HTTP, spoken to by the gateway's SMS sink: a message arrives
with its signature checked, a bad signature or key is refused, a throttled or failing answer is retried
by the dispatcher, and an escalated alert reaches the next person's phone."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.alerts.v1 import events_pb2
from omsctl.stack import SMS_ACCOUNT, sms_sandbox_env
from services.gateway.alerts import AlertHub, DeliveryError, Dispatcher, RecordNotifier, SmsSink
from services.gateway.alerts.sinks import sinks_from_settings
from services.gateway.domain.alert_records import Raised, Recipient, Route, Severity
from services.gateway.handlers.alert_desk import AlertDesk
from services.gateway.store.uow import GatewayUnitOfWork
from services.kit.db import make_engine

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
OPS, SUPERVISOR = "13800000001", "13800000002"


@dataclass
class Sandbox:
    base: str
    session: aiohttp.ClientSession

    async def control(self, **switches: Any) -> None:
        async with self.session.post(f"{self.base}/_control", json=switches) as response:
            assert response.status == 200, await response.text()

    async def messages(self, phone: str | None = None) -> list[dict[str, Any]]:
        query = {"phone": phone} if phone else {}
        async with self.session.get(f"{self.base}/_control/messages", params=query) as response:
            return list((await response.json())["messages"])

    async def requests(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/_control/requests") as response:
            return list((await response.json())["requests"])


@pytest.fixture(scope="module")
async def sandbox_process() -> AsyncIterator[str]:
    env = {**os.environ, **sms_sandbox_env(), "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT)])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandboxes.sms",
        "--host=127.0.0.1",
        "--port=0",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ").strip()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


@pytest.fixture
async def sandbox(sandbox_process: str) -> AsyncIterator[Sandbox]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sandbox_process}/_control/reset") as response:
            assert response.status == 200
        yield Sandbox(sandbox_process, session)


def sink(sandbox: Sandbox, secret: str = SMS_ACCOUNT["ACCESS_KEY_SECRET"], key: str = "") -> SmsSink:
    return SmsSink(
        f"{sandbox.base}/",
        access_key_id=key or SMS_ACCOUNT["ACCESS_KEY_ID"],
        access_key_secret=secret,
        sign_name=SMS_ACCOUNT["SIGN_NAME"],
        template_code=SMS_ACCOUNT["TEMPLATE_CODE"],
    )


def alert(message: str = "SKU-1 仓 W1 低于安全库存 (2 < 5)，已开补货单 R-7") -> events_pb2.AlertRaised:
    return events_pb2.AlertRaised(
        event_id="ev-1",
        kind="low_stock",
        severity=events_pb2.SEVERITY_HIGH,
        source="inventory",
        message=message,
        dedupe_key="inventory:low_stock:SKU-1:W1",
    )


class NoWait:
    async def __call__(self, delay: float) -> None:
        await asyncio.sleep(0)


async def test_a_signed_message_arrives_with_the_alert_in_its_template(sandbox: Sandbox) -> None:
    await sink(sandbox).send_to(alert(), [OPS, SUPERVISOR])

    (to_ops,) = await sandbox.messages(OPS)
    assert to_ops["template_code"] == SMS_ACCOUNT["TEMPLATE_CODE"]
    assert to_ops["template_param"] == {
        "severity": "HIGH",
        "kind": "low_stock",
        "order": "-",
        "summary": "SKU-1 仓 W1 低于安全库存 (2 < 5)，已开补货单 R-7",
    }
    assert to_ops["text"].startswith(f"【{SMS_ACCOUNT['SIGN_NAME']}】OMS HIGH 告警 low_stock")
    assert len(await sandbox.messages(SUPERVISOR)) == 1


async def test_a_long_message_is_clipped_to_the_templates_variable_limit(sandbox: Sandbox) -> None:
    await sink(sandbox).send_to(alert("x" * 200), [OPS])

    (message,) = await sandbox.messages(OPS)
    assert len(message["template_param"]["summary"]) == 35


async def test_a_wrong_secret_fails_the_signature_and_an_unknown_key_is_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(DeliveryError, match="HTTP 400 SignatureDoesNotMatch"):
        await sink(sandbox, secret="not-the-secret").send_to(alert(), [OPS])
    with pytest.raises(DeliveryError, match=r"HTTP 404 InvalidAccessKeyId\.NotFound"):
        await sink(sandbox, key="LTAI-unknown").send_to(alert(), [OPS])

    assert await sandbox.messages() == []


async def test_a_bad_phone_number_is_the_providers_business_refusal(sandbox: Sandbox) -> None:
    with pytest.raises(DeliveryError, match=r"isv\.MOBILE_NUMBER_ILLEGAL"):
        await sink(sandbox).send_to(alert(), ["12345"])


async def test_a_throttled_or_failing_answer_is_retried_until_the_message_is_sent_once(
    sandbox: Sandbox,
) -> None:
    await sandbox.control(throttle_next=1, fail_next=1)
    dispatcher = Dispatcher([sink(sandbox)], None, AlertHub(), sleep=NoWait())

    await dispatcher.handle(alert(), [OPS])

    assert [r["code"] for r in await sandbox.requests()] == [
        "ServiceUnavailable",
        "isv.BUSINESS_LIMIT_CONTROL",
        "OK",
    ]
    assert len(await sandbox.messages(OPS)) == 1
    assert (dispatcher.retried["sms"], dispatcher.delivered["sms"]) == (2, 1)


async def test_without_a_phone_the_sms_sink_is_not_called(sandbox: Sandbox) -> None:
    dispatcher = Dispatcher([sink(sandbox)], None, AlertHub(), sleep=NoWait())

    await dispatcher.handle(alert())

    assert await sandbox.requests() == []


async def test_the_sms_sink_is_built_from_its_settings(sandbox: Sandbox) -> None:
    (sms,) = sinks_from_settings(
        {
            "ALERT_SINKS": "sms",
            "ALERT_SMS_URL": f"{sandbox.base}/",
            **{f"ALERT_SMS_{name}": value for name, value in SMS_ACCOUNT.items()},
        }
    )
    assert isinstance(sms, SmsSink)
    assert SMS_ACCOUNT["ACCESS_KEY_SECRET"] not in repr(sms)
    with pytest.raises(ValueError, match="ALERT_SMS_ACCESS_KEY_SECRET"):
        sinks_from_settings({"ALERT_SINKS": "sms", "ALERT_SMS_ACCESS_KEY_ID": "k"})


@pytest.fixture
async def engine(gateway_db: str) -> AsyncIterator[AsyncEngine]:
    created = make_engine(gateway_db)
    yield created
    await created.dispose()


async def test_an_unacknowledged_alert_reaches_the_first_phone_then_the_next_after_the_delay(
    sandbox: Sandbox, engine: AsyncEngine
) -> None:
    now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    clock = {"now": now}
    chain = (Recipient(role="ops", phone=OPS), Recipient(role="supervisor", phone=SUPERVISOR))
    desk = AlertDesk(
        lambda: GatewayUnitOfWork(engine),
        (Route(("*",), Severity.HIGH, chain, timedelta(seconds=1)),),
        RecordNotifier(Dispatcher([sink(sandbox)], None, AlertHub(), sleep=NoWait())),
        lambda: clock["now"].timestamp(),
    )
    raised = Raised(
        "ev-9", "paid_out_of_stock", Severity.CRITICAL, "orders", "o-9", "paid, no stock", "", "", "", (), now
    )

    await desk.raised(raised)
    assert [m["phone"] for m in await sandbox.messages()] == [OPS]
    clock["now"] = now + timedelta(seconds=1)
    assert await desk.escalate_due() == 1

    assert [m["phone"] for m in await sandbox.messages()] == [OPS, SUPERVISOR]
    (escalated,) = await sandbox.messages(SUPERVISOR)
    assert escalated["template_param"]["order"] == "o-9"
    assert escalated["template_param"]["summary"].startswith("escalated to role:supervisor")
