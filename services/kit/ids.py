"""Time-ordered ids (UUIDv7): sortable by creation time, index-friendly, unguessable enough."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())


def canonical(value: str) -> str:
    """An id as this platform writes it (hyphenated, lower case), from any form `uuid` reads: a
    provider's merchant order number has no room for hyphens (WeChat Pay: at most 32 characters)."""
    return str(uuid.UUID(value))


def is_id(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 7
    except (ValueError, AttributeError, TypeError):
        return False
