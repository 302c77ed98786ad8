"""When an alert is a repeat, and how much of it a channel is sent.

An alert is delivered at most once per (channel, dedupe key) within a window, across replicas. Without a
dedupe key of its own, its event id still de-duplicates the bus's at-least-once redeliveries; an alert
with neither is always delivered.
"""

from __future__ import annotations

DEFAULT_WINDOW_SECONDS = 600
# Robot APIs cap message sizes (WeCom markdown: 4096 bytes); a runaway message must not make delivery fail.
MAX_MESSAGE_CHARS = 1500


def dedupe_key(alert_key: str, event_id: str) -> str:
    """What identifies repeats of an alert; "" when nothing does (it is not de-duplicated)."""
    return alert_key or event_id


def dedupe_slot(prefix: str, channel: str, key: str) -> str:
    """The one name every replica claims for a (channel, key) pair."""
    return f"{prefix}:dedupe:{channel}:{key}"


def watched(severity: int, min_severity: int) -> bool:
    """Whether a watcher asking for `min_severity` and up is shown an alert of `severity`."""
    return severity >= min_severity


def clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
