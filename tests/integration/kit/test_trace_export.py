"""Spans leave a service over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set: a tiny receiver in
this process (an aiohttp server taking POST /v1/traces in protobuf, standing in for a collector, spoken
to over the network) gets the server and client spans of one call, in the caller's trace."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[Received]]]:
    received: list[Received] = []

    async def traces(request: web.Request) -> web.Response:
        export = trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    received.append(
                        Received(
                            attributes.get("service.name", ""),
                            span.name,
                            span.kind,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_a_calls_spans_are_exported_to_the_otlp_endpoint(
    collector: tuple[str, list[Received]],
) -> None:
    endpoint, received = collector
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("traced_server.py")),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), timeout=30))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await channel.unary_unary("/test.Echo/Relay")(
                b"hello", metadata=(("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),), timeout=10
            )
        assert answer == b"said hello"

        def in_the_trace() -> list[Received]:
            return [span for span in received if span.trace_id == TRACE_ID]

        await eventually(lambda: len(in_the_trace()) >= 3, within=20)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)
    spans = {(span.name, span.kind): span for span in in_the_trace()}
    relay = spans[("/test.Echo/Relay", trace_pb2.Span.SPAN_KIND_SERVER)]
    call = spans[("/test.Echo/Say", trace_pb2.Span.SPAN_KIND_CLIENT)]
    said = spans[("/test.Echo/Say", trace_pb2.Span.SPAN_KIND_SERVER)]
    assert relay.parent_span_id == CALLER_SPAN
    assert call.parent_span_id == relay.span_id
    assert said.parent_span_id == call.span_id
    assert {span.service for span in (relay, call, said)} == {"traced-test"}
