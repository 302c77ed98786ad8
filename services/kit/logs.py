"""JSON-lines logging with the current trace id on every record."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from services.kit.db_errors import database_error
from services.kit.tracing import current_span_id, current_trace_id

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "trace_id": current_trace_id(),
            "span_id": current_span_id(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)

    def formatException(self, ei: Any) -> str:
        """A database error keeps its frames but not its text: that quotes the statement, and Postgres'
        detail quotes the values in it (`Key (phone)=(…) already exists`), personal data included."""
        error = ei[1]
        summary = database_error(error) if isinstance(error, BaseException) else None
        if summary is None:
            return super().formatException(ei)
        frames = "".join(traceback.format_list(traceback.extract_tb(error.__traceback__)))
        return f"Traceback (most recent call last):\n{frames}{summary}"


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
