"""Unknown JSON body fields, refused: Envoy's transcoder drops them silently, so Envoy lists the key paths
of every JSON body in `x-oms-json-fields` (see deploy/envoy/envoy.yaml) and the gateway checks each one
against the method's message before the call goes anywhere.

A path is the JSON keys from the body's root, joined by `.` (arrays add nothing), each key
percent-encoded where it holds `.`, `,`, `%` or non-ASCII bytes. Keys are accepted in either of the
forms the transcoder accepts (`unitPrice` or `unit_price`). Below a map field the next key is data;
below Struct, Value, ListValue and Any everything is data.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from google.api import annotations_pb2

HEADER = "x-oms-json-fields"
OPAQUE = frozenset(
    {
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Any",
        "google.api.HttpBody",
    }
)


def unknown_field(method: Any, listed: str) -> str | None:
    """The first listed path that is not a field of the method's JSON body, as the caller wrote it."""
    root = body_message(method)
    if root is None:
        return None
    for path in listed.split(","):
        if path:
            unknown = _first_unknown(root, [_key(segment) for segment in path.split(".")])
            if unknown is not None:
                return unknown
    return None


def body_message(method: Any) -> Any:
    """The message the method's HTTP body is read into (`body: "*"`, or the named field's), or None."""
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    if not rule.body:
        return None
    message = method.input_type
    if rule.body == "*":
        return message
    for name in rule.body.split("."):
        message = message.fields_by_name[name].message_type
        if message is None:
            return None
    return message


def _first_unknown(message: Any, keys: list[str]) -> str | None:
    index = 0
    while index < len(keys):
        if message is None or message.full_name in OPAQUE:
            return None
        field = _fields(message).get(keys[index])
        if field is None:
            return ".".join(keys[: index + 1])
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            message = entry.fields_by_name["value"].message_type
            index += 2
            continue
        message = entry
        index += 1
    return None


@lru_cache(maxsize=1024)
def _fields(message: Any) -> dict[str, Any]:
    return {
        **{field.name: field for field in message.fields},
        **{field.json_name: field for field in message.fields},
    }


def _key(segment: str) -> str:
    key = unquote(segment)
    if "\\" in key:  # a JSON escape in the key as sent, e.g. "\u0073ku" for sku
        try:
            decoded = json.loads(f'"{key}"')
        except ValueError:
            return key
        return str(decoded)
    return key
