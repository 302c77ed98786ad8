"""The gateway's alerts feed against real things: Redis for de-duplication, a local HTTP server standing in
for the webhook / WeCom / DingTalk endpoints, and an aiosmtpd server for e-mail."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import gc
import hashlib
import hmac
import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from oms.alerts.v1 import events_pb2
from omsctl.stack import Infra
from services.gateway.alerts import (
    AlertHub,
    Deduper,
    DeliveryError,
    DingTalkSink,
    Dispatcher,
    EmailSink,
    LogSink,
    WebhookSink,
    WeComSink,
    sinks_from_settings,
)
from tests.conftest import random_ref

pytestmark = pytest.mark.integration

LOW, MEDIUM, HIGH, CRITICAL = (
    events_pb2.SEVERITY_LOW,
    events_pb2.SEVERITY_MEDIUM,
    events_pb2.SEVERITY_HIGH,
    events_pb2.SEVERITY_CRITICAL,
)


def alert(
    severity: int = HIGH, dedupe_key: str = "", message: str = "order stuck in PAID for 46 min"
) -> events_pb2.AlertRaised:
    raised = events_pb2.AlertRaised(
        event_id=random_ref("ev"),
        kind="order_exception",
        severity=severity,  # type: ignore[arg-type]
        source="orders",
        order_id="o-1001",
        message=message,
        dedupe_key=dedupe_key or random_ref("k"),
    )
    raised.occurred_at.FromJsonString("2024-06-01T08:30:00Z")
    return raised


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ local servers


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpReceiver:
    """A real HTTP server on a free port; `statuses[path]` scripts the answers (then 200)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            receiver.requests.append(
                Received(
                    parts.path, urllib.parse.parse_qs(parts.query), parts.query, dict(self.headers), body
                )
            )
            script = receiver.statuses.get(parts.path, [])
            status = script.pop(0) if script else 200
            answer = receiver.answers.get(parts.path, b'{"errcode":0,"errmsg":"ok"}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    receiver = HttpReceiver(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    thread = threading.Thread(target=receiver.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


class _FreePortController(Controller):
    # aiosmtpd's Controller connects to `self.port` to check the server is up, so port 0 needs the real one.
    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = _FreePortController(
        mailbox, hostname="127.0.0.1", port=0, authenticator=mailbox.authenticate, auth_require_tls=False
    )
    controller.start()
    yield mailbox, controller.port
    controller.stop()


@pytest.fixture
async def redis_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return random_ref("oms:test-alert:")


class Sleeps:
    """The dispatcher's backoff, recorded instead of waited."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


# ------------------------------------------------------------------------------------------ HTTP channels


async def test_the_webhook_receives_the_alert_as_flat_json(http: HttpReceiver) -> None:
    raised = alert(CRITICAL)

    await WebhookSink(http.url("/hook")).send(raised)

    (request,) = http.to("/hook")
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body == {
        "kind": "order_exception",
        "severity": "CRITICAL",
        "source": "orders",
        "order_id": "o-1001",
        "message": "order stuck in PAID for 46 min",
        "occurred_at": "2024-06-01T08:30:00Z",
        "event_id": raised.event_id,
    }


async def test_a_webhook_answering_non_2xx_is_a_failure(http: HttpReceiver) -> None:
    http.statuses["/hook"] = [503]

    with pytest.raises(DeliveryError, match="HTTP 503"):
        await WebhookSink(http.url("/hook")).send(alert())


async def test_a_redirect_is_a_failure_not_a_silent_get(http: HttpReceiver) -> None:
    http.statuses["/hook"] = [302]

    with pytest.raises(DeliveryError, match="HTTP 302"):
        await WebhookSink(http.url("/hook")).send(alert())


async def test_wecom_receives_a_markdown_message(http: HttpReceiver) -> None:
    await WeComSink(http.url("/cgi-bin/webhook/send?key=robot-key")).send(alert(HIGH))

    (request,) = http.to("/cgi-bin/webhook/send")
    assert request.query == {"key": ["robot-key"]}
    assert request.body == {
        "msgtype": "markdown",
        "markdown": {
            "content": '**<font color="warning">[HIGH]</font> order_exception**\n'
            "> source: orders\n"
            "> order: o-1001\n"
            "> at: 2024-06-01T08:30:00Z\n"
            "\n"
            "order stuck in PAID for 46 min"
        },
    }


async def test_dingtalk_receives_a_markdown_message_signed_with_timestamp_and_sign(
    http: HttpReceiver,
) -> None:
    secret = "SECabc+/=中"
    sink = DingTalkSink(http.url("/robot/send?access_token=tok"), secret=secret, clock=lambda: 1717230600.123)

    await sink.send(alert(MEDIUM))

    (request,) = http.to("/robot/send")
    assert request.body == {
        "msgtype": "markdown",
        "markdown": {
            "title": "[MEDIUM] order_exception",
            "text": "#### [MEDIUM] order_exception\n"
            "> source: orders\n"
            "> order: o-1001\n"
            "> at: 2024-06-01T08:30:00Z\n"
            "\n"
            "order stuck in PAID for 46 min",
        },
    }
    # DingTalk's documented scheme, computed here independently of the sink.
    timestamp = "1717230600123"
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert request.query == {"access_token": ["tok"], "timestamp": [timestamp], "sign": [expected]}
    assert f"sign={urllib.parse.quote_plus(expected)}" in request.raw_query


async def test_dingtalk_without_a_secret_sends_no_signature(http: HttpReceiver) -> None:
    await DingTalkSink(http.url("/robot/send?access_token=tok")).send(alert())

    (request,) = http.to("/robot/send")
    assert request.query == {"access_token": ["tok"]}


async def test_a_robot_error_code_inside_a_200_answer_is_a_failure(http: HttpReceiver) -> None:
    http.answers["/robot/send"] = b'{"errcode":310000,"errmsg":"sign not match"}'

    with pytest.raises(DeliveryError, match="errcode 310000: sign not match"):
        await DingTalkSink(http.url("/robot/send?access_token=tok"), secret="s").send(alert())


def test_only_http_urls_are_accepted() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "http:///no-host", "example.com/hook"):
        with pytest.raises(ValueError, match="http"):
            WebhookSink(url)


# -------------------------------------------------------------------------------------- e-mail and log


async def test_the_email_arrives_with_severity_and_kind_in_the_subject(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    raised = alert(CRITICAL, message="仓库 W1 无揽收 48h")
    sink = EmailSink("127.0.0.1", port, "oms@example.com", ["ops@example.com", "cs@example.com"])

    await sink.send(raised)

    (envelope,) = mailbox.envelopes
    assert envelope.mail_from == "oms@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "cs@example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "[OMS CRITICAL] order_exception"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")  # SMTP puts CRLF on the wire
    assert text.startswith("仓库 W1 无揽收 48h\n")
    assert "order_id: o-1001" in text
    assert f"event_id: {raised.event_id}" in text
    assert mailbox.logins == []


async def test_the_email_sink_logs_in_when_given_credentials(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    sink = EmailSink("127.0.0.1", port, "oms@example.com", ["ops@example.com"], username="u", password="p")

    await sink.send(alert())

    assert mailbox.logins == [("u", "p")]
    assert len(mailbox.envelopes) == 1
    assert "password" not in repr(sink)


async def test_the_log_sink_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    raised = alert(LOW)

    with caplog.at_level(logging.WARNING, logger="services.gateway.alerts"):
        await LogSink().send(raised)

    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "\n" not in record.getMessage()
    assert json.loads(record.getMessage()) == {
        "alert": {
            "event_id": raised.event_id,
            "occurred_at": "2024-06-01T08:30:00Z",
            "kind": "order_exception",
            "severity": "LOW",
            "source": "orders",
            "order_id": "o-1001",
            "message": "order stuck in PAID for 46 min",
            "dedupe_key": raised.dedupe_key,
        }
    }


# ------------------------------------------------------------------------------------- de-duplication


async def test_the_same_dedupe_key_twice_in_the_window_is_delivered_once_per_sink(
    http: HttpReceiver, redis_client: aioredis.Redis, prefix: str
) -> None:
    sinks = [WebhookSink(http.url("/a"), name="a"), WebhookSink(http.url("/b"), name="b")]
    dispatcher = Dispatcher(sinks, Deduper(redis_client, prefix), AlertHub())

    await dispatcher.handle(alert(dedupe_key="stuck:o-1001"))
    await dispatcher.handle(alert(dedupe_key="stuck:o-1001"))

    assert len(http.to("/a")) == 1
    assert len(http.to("/b")) == 1
    assert dispatcher.suppressed == {"a": 1, "b": 1}
    assert 0 < await redis_client.ttl(f"{prefix}:dedupe:a:stuck:o-1001") <= 600


async def test_a_different_dedupe_key_is_delivered_again(
    http: HttpReceiver, redis_client: aioredis.Redis, prefix: str
) -> None:
    dispatcher = Dispatcher([WebhookSink(http.url("/a"))], Deduper(redis_client, prefix), AlertHub())

    await dispatcher.handle(alert(dedupe_key="stuck:o-1"))
    await dispatcher.handle(alert(dedupe_key="stuck:o-2"))

    assert len(http.to("/a")) == 2


async def test_two_replicas_share_the_dedupe_window(
    http: HttpReceiver, redis_client: aioredis.Redis, infra: Infra, prefix: str
) -> None:
    other_client = aioredis.from_url(infra.redis_url)
    replicas = [
        Dispatcher([WebhookSink(http.url("/a"))], Deduper(client, prefix), AlertHub())
        for client in (redis_client, other_client)
    ]
    try:
        # The same alert consumed by both replicas at once: exactly one wins the key.
        await asyncio.gather(*(replica.handle(alert(dedupe_key="stuck:o-9")) for replica in replicas))
    finally:
        await other_client.aclose()

    assert len(http.to("/a")) == 1


async def test_when_redis_is_down_alerts_are_still_delivered(
    http: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    down = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    dispatcher = Dispatcher([WebhookSink(http.url("/a"))], Deduper(down, timeout_seconds=0.5), AlertHub())
    try:
        with caplog.at_level(logging.WARNING, logger="services.gateway.alerts"):
            await dispatcher.handle(alert(dedupe_key="stuck:o-1"))
            await dispatcher.handle(alert(dedupe_key="stuck:o-1"))
    finally:
        await down.aclose()

    # Better a duplicate than a lost alert.
    assert len(http.to("/a")) == 2
    assert any("dedupe unavailable" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------ retries, isolation


async def test_a_sink_that_fails_twice_then_succeeds_gets_the_alert_once(http: HttpReceiver) -> None:
    http.statuses["/flaky"] = [500, 502]
    sleeps = Sleeps()
    dispatcher = Dispatcher([WebhookSink(http.url("/flaky"), name="flaky")], None, AlertHub(), sleep=sleeps)

    await dispatcher.handle(alert())

    assert len(http.to("/flaky")) == 3
    assert dispatcher.delivered == {"flaky": 1}
    assert dispatcher.failed == {}
    assert sleeps.delays == [0.5, 1.0]


async def test_a_sink_that_always_fails_does_not_stop_the_others(
    http: HttpReceiver, redis_client: aioredis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = WebhookSink(f"http://127.0.0.1:{closed_port()}/hook", name="broken")
    dispatcher = Dispatcher(
        [broken, WebhookSink(http.url("/ok"), name="ok")],
        Deduper(redis_client, prefix),
        AlertHub(),
        backoff=(0.001,),
    )

    with caplog.at_level(logging.ERROR, logger="services.gateway.alerts"):
        await dispatcher.handle(alert(dedupe_key="stuck:o-5"))

    assert len(http.to("/ok")) == 1
    assert dispatcher.delivered == {"ok": 1}
    assert dispatcher.failed == {"broken": 1}
    (logged,) = [r for r in caplog.records if r.getMessage() == "alert delivery failed"]
    assert logged.__dict__["sink"] == "broken"
    # The failed channel gave its window back: the next occurrence is tried there again, not suppressed.
    assert await redis_client.exists(f"{prefix}:dedupe:broken:stuck:o-5") == 0
    assert await redis_client.exists(f"{prefix}:dedupe:ok:stuck:o-5") == 1


async def test_the_dispatcher_publishes_to_the_live_feed_even_when_every_sink_fails() -> None:
    hub = AlertHub()
    watching = hub.subscribe()
    broken = WebhookSink(f"http://127.0.0.1:{closed_port()}/hook")
    raised = alert()

    await Dispatcher([broken], None, hub, attempts=1).handle(raised)

    assert await asyncio.wait_for(anext(watching), 1) == raised


# ------------------------------------------------------------------------------------------------- hub


async def test_two_subscribers_both_receive_every_alert() -> None:
    hub = AlertHub()
    first, second = hub.subscribe(), hub.subscribe()
    alerts = [alert(), alert()]

    for raised in alerts:
        hub.publish(raised)

    for subscription in (first, second):
        assert [await anext(subscription), await anext(subscription)] == alerts


async def test_a_subscriber_only_gets_alerts_at_or_above_its_minimum_severity() -> None:
    hub = AlertHub()
    urgent = hub.subscribe(min_severity=HIGH)

    for severity in (LOW, HIGH, MEDIUM, CRITICAL):
        hub.publish(alert(severity))
    hub.close()

    assert [a.severity async for a in urgent] == [HIGH, CRITICAL]


async def test_a_late_joiner_gets_the_last_alerts_replayed_then_live_ones() -> None:
    hub = AlertHub(replay=2)
    early = [alert(LOW), alert(HIGH), alert(CRITICAL)]
    for raised in early:
        hub.publish(raised)

    late = hub.subscribe()
    fresh = hub.subscribe(replay=False)
    live = alert()
    hub.publish(live)
    hub.close()

    assert [a async for a in late] == [*early[1:], live]
    assert [a async for a in fresh] == [live]


async def test_a_slow_subscriber_drops_its_oldest_alerts_without_blocking_publish() -> None:
    hub = AlertHub(queue_size=3)
    slow, other = hub.subscribe(), hub.subscribe(min_severity=CRITICAL)
    alerts = [alert() for _ in range(5)]

    for raised in alerts:  # synchronous: would hang the test if publish waited for the reader
        hub.publish(raised)
    hub.close()

    assert [a async for a in slow] == alerts[2:]
    assert slow.dropped == 2
    assert other.dropped == 0
    assert hub.dropped == 2


async def test_a_closed_subscription_stops_receiving_and_ends_a_waiting_reader() -> None:
    hub = AlertHub()
    subscription = hub.subscribe()
    reader = asyncio.create_task(anext(subscription, None))
    await asyncio.sleep(0)

    await subscription.aclose()
    hub.publish(alert())

    assert await asyncio.wait_for(reader, 1) is None
    assert hub.subscribers == 0


async def test_a_subscription_dropped_without_closing_is_forgotten() -> None:
    hub = AlertHub()
    subscription = hub.subscribe()
    assert hub.subscribers == 1

    del subscription
    gc.collect()

    assert hub.subscribers == 0


async def test_a_reader_waiting_on_an_empty_feed_wakes_for_the_next_alert() -> None:
    hub = AlertHub()
    subscription = hub.subscribe()
    reader = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)
    raised = alert()

    hub.publish(raised)

    assert await asyncio.wait_for(reader, 1) == raised


# -------------------------------------------------------------------------------------------- settings


def test_the_default_is_the_log_sink_alone() -> None:
    (sink,) = sinks_from_settings({})
    assert isinstance(sink, LogSink)


def test_every_sink_is_built_from_its_settings() -> None:
    sinks = sinks_from_settings(
        {
            "ALERT_SINKS": "log, webhook,wecom,dingtalk,email,log",
            "ALERT_WEBHOOK_URL": "https://hooks.example.com/oms",
            "ALERT_WECOM_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
            "ALERT_DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=t",
            "ALERT_DINGTALK_SECRET": "SEC1",
            "SMTP_HOST": "smtp.example.com",
            "SMTP_FROM": "oms@example.com",
            "SMTP_TO": "ops@example.com, cs@example.com",
            "SMTP_STARTTLS": "true",
        }
    )

    assert [s.name for s in sinks] == ["log", "webhook", "wecom", "dingtalk", "email"]
    assert isinstance(sinks[3], DingTalkSink) and sinks[3].secret == "SEC1"
    email_sink = sinks[4]
    assert isinstance(email_sink, EmailSink)
    assert (email_sink.port, email_sink.starttls) == (25, True)
    assert list(email_sink.recipients) == ["ops@example.com", "cs@example.com"]


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"ALERT_SINKS": "webhook"}, "ALERT_WEBHOOK_URL"),
        ({"ALERT_SINKS": "wecom"}, "ALERT_WECOM_URL"),
        ({"ALERT_SINKS": "dingtalk"}, "ALERT_DINGTALK_URL"),
        ({"ALERT_SINKS": "email", "SMTP_FROM": "a@x", "SMTP_TO": "b@x"}, "SMTP_HOST"),
        ({"ALERT_SINKS": "email", "SMTP_HOST": "h", "SMTP_TO": "b@x"}, "SMTP_FROM"),
        ({"ALERT_SINKS": "email", "SMTP_HOST": "h", "SMTP_FROM": "a@x"}, "SMTP_TO"),
        ({"ALERT_SINKS": "email", "SMTP_HOST": "h", "SMTP_FROM": "a@x", "SMTP_TO": " , "}, "SMTP_TO"),
    ],
)
def test_a_sink_listed_without_its_setting_is_an_error_naming_the_setting(
    env: dict[str, str], missing: str
) -> None:
    with pytest.raises(ValueError, match=missing):
        sinks_from_settings(env)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ALERT_SINKS": "log,sms"}, "sms"),
        ({"ALERT_SINKS": "webhook", "ALERT_WEBHOOK_URL": "file:///tmp/x"}, "ALERT_WEBHOOK_URL"),
        (
            {"ALERT_SINKS": "email", "SMTP_HOST": "h", "SMTP_FROM": "a", "SMTP_TO": "b", "SMTP_PORT": "x"},
            "SMTP_PORT",
        ),
        (
            {
                "ALERT_SINKS": "email",
                "SMTP_HOST": "h",
                "SMTP_FROM": "a",
                "SMTP_TO": "b",
                "SMTP_STARTTLS": "y",
            },
            "SMTP_STARTTLS",
        ),
    ],
)
def test_a_bad_setting_is_an_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        sinks_from_settings(env)


def test_sinks_sharing_a_name_are_refused_because_the_name_is_the_dedupe_channel() -> None:
    with pytest.raises(ValueError, match="unique"):
        Dispatcher([LogSink(), LogSink()], None, AlertHub())
