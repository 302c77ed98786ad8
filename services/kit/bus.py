"""NATS JetStream conventions: subjects `<prefix>.<domain>.<event>`, one stream per domain, headers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Oms-Event-Type"
CONTENT_TYPE = "Content-Type"
PROTOBUF = "application/protobuf"
DUPLICATE_WINDOW_SECONDS = 600.0

Encoder = TypeVar("Encoder", bound=Callable[..., Any])


@dataclass(frozen=True)
class StreamLimits:
    """How a domain's stream is kept (settings STREAM_*): copies, how long and how much it holds, and
    how long JetStream remembers a `Nats-Msg-Id` to drop a re-sent event."""

    replicas: int = 1
    max_age_seconds: float = 7 * 24 * 3600.0
    max_bytes: int = 1 << 30
    duplicate_window_seconds: float = DUPLICATE_WINDOW_SECONDS


def full_subject(prefix: str, subject: str) -> str:
    """`orders.created` under prefix `oms` is `oms.orders.created`."""
    return f"{prefix}.{subject}"


def publishes(published: Mapping[str, str]) -> Callable[[Encoder], Encoder]:
    """Check a service's event encoder (domain event → (subject, message) or None) against its table of
    published subjects (`services/<svc>/subjects.py`: subject → full proto message name), on every
    event: a subject the table does not list, or another message on it, fails the use case's
    transaction instead of reaching integrators undocumented. The AsyncAPI document is written from
    the same tables (`omsctl contracts`)."""

    def wrap(encode: Encoder) -> Encoder:
        @functools.wraps(encode)
        def checked(*args: Any, **kwargs: Any) -> Any:
            encoded = encode(*args, **kwargs)
            if encoded is not None:
                subject, message = cast(tuple[str, Any], encoded)
                expected = published.get(subject)
                if expected != message.DESCRIPTOR.full_name:
                    raise ValueError(
                        f"{subject} is published with {message.DESCRIPTOR.full_name}, but the service's "
                        f"subjects table says {expected or 'nothing'}: change the table (and run "
                        "`python -m omsctl contracts`) or the mapper"
                    )
            return encoded

        return cast(Encoder, checked)

    return wrap


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


async def ensure_stream(
    js: JetStreamContext, prefix: str, domain: str, limits: StreamLimits | None = None, *, owner: bool = False
) -> str:
    """Create the domain's stream if missing (file storage, the oldest messages dropped past the limits).

    The `owner` (the relay of the service that publishes the domain's events) also updates an existing
    stream whose limits differ from its settings; subscribers only create a missing one.
    """
    limits = limits or StreamLimits()
    name = stream_name(prefix, domain)
    wanted = StreamConfig(
        name=name,
        subjects=[f"{prefix}.{domain}.>"],
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        duplicate_window=limits.duplicate_window_seconds,
    )
    try:
        current = (await js.stream_info(name)).config
    except NotFoundError:
        await js.add_stream(wanted)
        log.info("created stream %s", name, extra={"limits": str(limits)})
        return name
    if owner and _limits_of(current) != limits:
        # keep what others may have added (subjects, description); change only the limits
        changed = replace(
            current,
            num_replicas=limits.replicas,
            max_age=limits.max_age_seconds,
            max_bytes=limits.max_bytes,
            duplicate_window=limits.duplicate_window_seconds,
        )
        try:
            await js.update_stream(changed)
        except Exception as error:
            # e.g. 3 replicas asked of a single server: events keep flowing on the current limits
            log.error("could not change the limits of stream %s to %s: %r", name, limits, error)
        else:
            log.info("updated the limits of stream %s", name, extra={"limits": str(limits)})
    return name


def _limits_of(config: StreamConfig) -> StreamLimits:
    return StreamLimits(
        replicas=config.num_replicas or 1,
        max_age_seconds=float(config.max_age or 0.0),
        max_bytes=config.max_bytes if config.max_bytes is not None else -1,
        duplicate_window_seconds=float(config.duplicate_window or 0.0),
    )
