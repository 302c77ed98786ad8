"""The examples for integrators: their settings, decoding and the HTTP client's answers, against a stub."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from examples import consumer, http_client
from oms.orders.v1 import events_pb2


def test_the_consumer_reads_its_settings_and_finds_the_stream_of_its_subject() -> None:
    settings = consumer.Settings.from_env({"OMS_NATS_URL": "nats://h:1", "SUBJECT": "logistics.delivered"})
    assert (settings.nats_url, settings.full_subject, settings.stream) == (
        "nats://h:1",
        "oms.logistics.delivered",
        "OMS_LOGISTICS",
    )


def test_the_consumer_decodes_the_type_its_header_names_and_calls_anything_else_poison() -> None:
    body = events_pb2.OrderCreated(event_id="e-1", order_id="o-1").SerializeToString()
    event = consumer.decode({"Oms-Event-Type": "oms.orders.v1.OrderCreated"}, body)
    assert isinstance(event, events_pb2.OrderCreated) and event.order_id == "o-1"
    with pytest.raises(consumer.Poison, match="unknown event type"):
        consumer.decode({"Oms-Event-Type": "oms.orders.v1.Nope"}, body)
    with pytest.raises(consumer.Poison, match="not protobuf"):
        consumer.decode({"Oms-Event-Type": "oms.orders.v1.OrderCreated"}, b"\xff\xff\xff")


class Stub(BaseHTTPRequestHandler):
    """Answers from a script: (status, headers, body) per call, and remembers what it was sent."""

    script: list[tuple[int, dict[str, str], dict[str, Any]]] = []
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.seen.append((self.command, self.path, headers, self.rfile.read(length)))
        status, headers, body = self.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.script, Stub.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_client_exchanges_client_credentials_and_waits_out_a_429(stub: str) -> None:
    Stub.script = [
        (200, {}, {"accessToken": "tok", "tokenType": "Bearer", "expiresIn": 3600}),
        (
            429,
            {"retry-after": "0"},
            {"code": 8, "message": "rate limit for write calls reached", "details": []},
        ),
        (200, {}, {"order": {"orderId": "o-1"}, "created": True, "outcome": "INGEST_OUTCOME_CREATED"}),
    ]
    client = http_client.Client.from_env({"OMS_HTTP": stub, "OMS_CLIENT_ID": "svc", "OMS_CLIENT_SECRET": "s"})
    assert client.create_order({"channel": "CHANNEL_OWN_SHOP"})["order"]["orderId"] == "o-1"
    (_, token_path, _, credentials), first, retried = Stub.seen
    assert (token_path, json.loads(credentials)) == ("/v1/tokens", {"clientId": "svc", "clientSecret": "s"})
    assert first[2]["authorization"] == retried[2]["authorization"] == "Bearer tok"
    assert first[2]["idempotency-key"] == retried[2]["idempotency-key"]


def test_the_client_reports_the_fields_of_a_400_and_the_code_of_a_404_and_a_401(stub: str) -> None:
    bad_request = {
        "code": 3,
        "message": "lines[0].quantity: must be between 1 and 100000",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [
                    {"field": "lines[0].quantity", "description": "must be between 1 and 100000"}
                ],
            }
        ],
    }
    Stub.script = [
        (400, {}, bad_request),
        (404, {}, {"code": 5, "message": "no order x", "details": []}),
        (401, {}, {"code": 16, "message": "authentication required", "details": []}),
    ]
    client = http_client.Client(stub, "tok", retries=0)
    with pytest.raises(http_client.ApiError) as bad:
        client.create_order({})
    with pytest.raises(http_client.ApiError) as unknown:
        client.get_order("x")
    with pytest.raises(http_client.ApiError) as refused:
        client.get_order("y")
    assert (bad.value.status, bad.value.fields) == (400, ["lines[0].quantity"])
    assert (unknown.value.status, unknown.value.code) == (404, 5)
    assert (refused.value.status, refused.value.code) == (401, 16)


def test_the_client_without_credentials_says_what_to_set() -> None:
    with pytest.raises(SystemExit, match="OMS_TOKEN"):
        http_client.Client.from_env({"OMS_HTTP": "http://127.0.0.1:1"})
