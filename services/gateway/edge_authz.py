"""Envoy's external authoriser (its `ext_authz` filter, HTTP): the direct lane for reads.

Envoy asks before a read of `policy.direct_read` reaches its owning service: `POST /authz/<the gRPC
method>` with the caller's authorization header, the JSON fields the edge listed and the request's gRPC
frame. The answer is always 200: with `x-oms-lane: direct` and the assertion of the caller for the
service, Envoy sends the call straight there (no Python proxy on its path); with `x-oms-lane: gateway`
it sends the call through the gateway's proxy as every other call goes, which refuses what it must
with the right status and counts the failed attempt. So this never refuses anything itself: a
refusal keeps its gRPC status and HTTP code (Envoy's own answers would turn 429 into UNAVAILABLE), and
anything it cannot decide alone (an API-key signature, a compressed frame, a malformed request, an
unknown JSON field) goes the way it always went.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from services.gateway import json_fields
from services.gateway.gate import Gate
from services.gateway.proxy import parsed_request
from services.kit.errors import InvalidArgument
from services.kit.identity import ASSERTION_HEADER

log = logging.getLogger(__name__)
PREFIX = "/authz"
LANE_HEADER = "x-oms-lane"
DIRECT, GATEWAY = "direct", "gateway"
# the frame Envoy passes on (its `with_request_body` limit is the same)
MAX_FRAME_BYTES = 65_536


def unframed(body: bytes) -> bytes | None:
    """The one uncompressed gRPC message of a request body (1 flag byte, 4 length bytes), else None."""
    if len(body) < 5 or body[0] != 0:
        return None
    length = int.from_bytes(body[1:5], "big")
    return body[5:] if len(body) == 5 + length else None


@functools.lru_cache(maxsize=1024)
def _described(method: str) -> tuple[Any, Callable[[], Message]] | None:
    """The method's descriptor and request class (looked up once per method), or None if unknown."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        described = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    return described, message_factory.GetMessageClass(described.input_type)


def well_formed(method: str, message: bytes, listed_fields: str) -> bool:
    """What the proxy checks before forwarding (`proxy.parsed_request`, the JSON fields), asked here
    so that only a call it would forward goes direct."""
    found = _described(method)
    if found is None:
        return False
    described, request_class = found
    try:
        parsed_request(request_class, message)
    except InvalidArgument:
        return False
    return not listed_fields or json_fields.unknown_field(described, listed_fields) is None


class EdgeAuthoriser:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def decide(self, method: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """The assertion for a call that goes direct; None for one that goes through the proxy."""
        message = unframed(body)
        if message is None or not well_formed(method, message, headers.get(json_fields.HEADER, "")):
            return None
        return await self.gate.admit_direct(method, headers)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.path.removeprefix(PREFIX)
        headers = {key.lower(): value for key, value in request.headers.items()}
        assertion: str | None = None
        try:
            body = await request.content.read(MAX_FRAME_BYTES + 6)
            assertion = await self.decide(method, headers, body)
        except Exception:  # never Envoy's error answer: the proxy takes the call as it always did
            log.exception("the edge authoriser could not decide %s; it goes through the gateway", method)
        if assertion is None:
            return web.Response(headers={LANE_HEADER: GATEWAY})
        return web.Response(headers={LANE_HEADER: DIRECT, ASSERTION_HEADER: assertion})

    async def serve(self, host: str, port: int) -> web.AppRunner:
        app = web.Application(client_max_size=MAX_FRAME_BYTES + 6)
        app.router.add_route("*", PREFIX + "/{method:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("edge authoriser listening on %s:%d", host, port)
        return runner
