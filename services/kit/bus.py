"""NATS JetStream conventions: subjects `<prefix>.<domain>.<event>`, one stream per domain, headers."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Oms-Event-Type"
CONTENT_TYPE = "Content-Type"
PROTOBUF = "application/protobuf"
DUPLICATE_WINDOW_SECONDS = 600.0


def full_subject(prefix: str, subject: str) -> str:
    """`orders.created` under prefix `oms` is `oms.orders.created`."""
    return f"{prefix}.{subject}"


def stream_name(prefix: str, domain: str) -> str:
    return f"{prefix}_{domain}".upper().replace(".", "_").replace("-", "_")


def domain_of(subject: str) -> str:
    return subject.split(".", 1)[0]


async def connect(url: str, name: str) -> NatsClient:
    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        drain_timeout=5,
    )


async def ensure_stream(js: JetStreamContext, prefix: str, domain: str) -> str:
    """Create the domain's stream if missing; file storage, a wide dedupe window for the relay."""
    name = stream_name(prefix, domain)
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=name,
                subjects=[f"{prefix}.{domain}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        )
        log.info("created stream %s", name)
    return name
