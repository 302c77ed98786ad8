"""Input no handler should ever see: NUL characters in text and JSON nested past any real document.

Postgres text cannot hold `\\x00`: a NUL reaching SQL fails the statement (a 500, with the statement in
the log) instead of being refused as bad input. The server interceptor checks every request's string
fields here before any handler runs; JSON carried as text is parsed with `loads`, which bounds its depth
(a deep document would otherwise end in a RecursionError somewhere downstream).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.kit.errors import InvalidArgument

NUL = "\x00"
NUL_PROBLEM = "must not contain a NUL character (\\u0000)"
MAX_JSON_DEPTH = 64

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def refuse_nul(message: Message, prefix: str = "") -> None:
    """Raise INVALID_ARGUMENT naming the first string field (at any depth, in lists and maps) with a NUL."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        entry = field.message_type if field.type == _MESSAGE else None
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            for key, item in value.items():
                where = f"{path}[{json.dumps(key, ensure_ascii=False)[:64]}]"
                if isinstance(key, str) and NUL in key:
                    raise InvalidArgument(where, f"key {NUL_PROBLEM}")
                _refuse_in_value(value_field, item, where)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _refuse_in_value(field, item, f"{path}[{index}]")
        else:
            _refuse_in_value(field, value, path)


def _refuse_in_value(field: FieldDescriptor, value: Any, path: str) -> None:
    if field.type == _STRING:
        if NUL in value:
            raise InvalidArgument(path, NUL_PROBLEM)
    elif field.type == _MESSAGE:
        refuse_nul(value, f"{path}.")


def loads(text: str | bytes, field: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for a request's JSON text: INVALID_ARGUMENT naming `field` when it is not JSON, nests
    deeper than `max_depth` or holds a NUL in a key or string."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise InvalidArgument(field, f"nests deeper than {max_depth} levels") from None
    except ValueError as error:
        raise InvalidArgument(field, f"is not JSON: {error}") from None
    check_document(document, field, max_depth)
    return document


def check_document(document: Any, field: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Depth and NUL checks on parsed JSON, without recursion (so no depth can overflow the stack)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if NUL in value:
                raise InvalidArgument(field, NUL_PROBLEM)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            raise InvalidArgument(field, f"nests deeper than {max_depth} levels")
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        else:
            pending.extend((item, depth + 1) for item in value)
