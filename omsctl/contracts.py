"""The contracts for integrators, written from the code: `python -m omsctl contracts`.

- docs/contracts/asyncapi.yaml: every subject the services publish on NATS (JetStream), from their
  subjects tables (`services/<svc>/subjects.py`, which their encoders are checked against), each with
  its message's schema from the protos (gen/oms.pb), the headers (services.kit.bus) and the stream's
  limits (services.kit.bus.StreamLimits, the STREAM_* settings' defaults).
- docs/contracts/openapi.json: every HTTP/JSON route Envoy's transcoder serves, from the
  `google.api.http` annotations of the services it transcodes (deploy/envoy/envoy.yaml), in the proto3
  JSON mapping the transcoder speaks, with each method's roles from the gateway's policy. The gateway
  serves it as `/console/openapi.json` and `/v1/openapi.json`.

`python -m omsctl contracts --check` writes nothing and exits 1 when a document is stale.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from omsctl import envoy
from services.aftersales import subjects as aftersales_subjects
from services.gateway.domain import policy
from services.inventory import subjects as inventory_subjects
from services.kit import bus, outbox
from services.logistics import subjects as logistics_subjects
from services.orders import subjects as orders_subjects
from services.routing import subjects as routing_subjects

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = ROOT / "gen" / "oms.pb"
FOLDER = ROOT / "docs" / "contracts"
ASYNCAPI = FOLDER / "asyncapi.yaml"
OPENAPI = FOLDER / "openapi.json"
COMMAND = ".venv/bin/python -m omsctl contracts"
PREFIX = "oms"
# who publishes what: each service's own table (a service that starts publishing adds its table here;
# tests/contract/test_api_contracts.py fails while a services/<svc>/subjects.py is missing from it)
PUBLISHERS: dict[str, Mapping[str, str]] = {
    "orders": orders_subjects.PUBLISHED,
    "inventory": inventory_subjects.PUBLISHED,
    "routing": routing_subjects.PUBLISHED,
    "logistics": logistics_subjects.PUBLISHED,
    "aftersales": aftersales_subjects.PUBLISHED,
}
# every service reports its outbox on core NATS (services.kit.runtime), not into a stream
REPORTERS = (*PUBLISHERS, "gateway")

_T = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    _T.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    # proto3 JSON writes 64-bit integers as strings (and reads numbers too)
    _T.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
# the well-known types have a JSON form of their own
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    **{
        f"google.protobuf.{name}Value": _SCALARS[kind]
        for name, kind in (
            ("Double", _T.TYPE_DOUBLE),
            ("Float", _T.TYPE_FLOAT),
            ("Int64", _T.TYPE_INT64),
            ("UInt64", _T.TYPE_UINT64),
            ("Int32", _T.TYPE_INT32),
            ("UInt32", _T.TYPE_UINT32),
            ("Bool", _T.TYPE_BOOL),
            ("String", _T.TYPE_STRING),
            ("Bytes", _T.TYPE_BYTES),
        )
    },
}
HTTP_BODY = "google.api.HttpBody"
STATUS = "google.rpc.Status"
BAD_REQUEST = "google.rpc.BadRequest"
# a path variable: `{order_id}`, `{path=**}`, `{name=shelves/*}`
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
# source locations: FileDescriptorProto.message_type 4, .enum_type 5, .service 6; DescriptorProto.field 2,
# .nested_type 3, .enum_type 4; EnumDescriptorProto.value 2; ServiceDescriptorProto.method 2
_MESSAGE, _ENUM, _SERVICE, _FIELD, _NESTED, _NESTED_ENUM, _VALUE, _METHOD = 4, 5, 6, 2, 3, 4, 2, 2


@dataclass
class Protos:
    """The descriptor set, indexed by full name, with each element's comment."""

    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    services: dict[str, descriptor_pb2.ServiceDescriptorProto] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DESCRIPTOR_SET) -> Protos:
        protos = cls()
        for file in descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file:
            protos._add(file)
        return protos

    def _add(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        where: dict[tuple[int, ...], str] = {}
        for location in file.source_code_info.location:
            text = "\n".join(
                part.strip()
                for part in (location.leading_comments, location.trailing_comments)
                if part.strip()
            )
            if text:
                where[tuple(location.path)] = " ".join(line.strip() for line in text.splitlines())

        def messages(items: Any, scope: str, path: tuple[int, ...], nested: int) -> None:
            for index, message in enumerate(items):
                name, here = f"{scope}.{message.name}", (*path, nested, index)
                self.messages[name] = message
                self._comment(name, where.get(here))
                for number, item in enumerate(message.field):
                    self._comment(f"{name}.{item.name}", where.get((*here, _FIELD, number)))
                enums(message.enum_type, name, (*here, _NESTED_ENUM))
                messages(message.nested_type, name, here, _NESTED)

        def enums(items: Any, scope: str, path: tuple[int, ...]) -> None:
            for index, enum in enumerate(items):
                name = f"{scope}.{enum.name}"
                self.enums[name] = enum
                self._comment(name, where.get((*path, index)))
                for number, value in enumerate(enum.value):
                    self._comment(f"{name}.{value.name}", where.get((*path, index, _VALUE, number)))

        messages(file.message_type, file.package, (), _MESSAGE)
        enums(file.enum_type, file.package, (_ENUM,))
        for index, service in enumerate(file.service):
            name = f"{file.package}.{service.name}"
            self.services[name] = service
            self._comment(name, where.get((_SERVICE, index)))
            for number, method in enumerate(service.method):
                self._comment(f"{name}.{method.name}", where.get((_SERVICE, index, _METHOD, number)))

    def _comment(self, name: str, text: str | None) -> None:
        if text:
            self.comments[name] = text


def _type(field_: descriptor_pb2.FieldDescriptorProto) -> str:
    return field_.type_name.lstrip(".")


class Schemas:
    """JSON Schemas of proto messages in the proto3 JSON mapping, one component per message and enum;
    `json_names` picks lowerCamelCase (what the transcoder prints) or the proto field names."""

    def __init__(self, protos: Protos, *, json_names: bool, field_numbers: bool = False) -> None:
        self.protos = protos
        self.json_names = json_names
        self.field_numbers = field_numbers
        self.components: dict[str, dict[str, Any]] = {}

    def ref(self, name: str) -> dict[str, Any]:
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placeholder first: messages may refer to themselves
            self.components[name] = self._enum(name) if name in self.protos.enums else self._message(name)
        return {"$ref": f"#/components/schemas/{name}"}

    def name_of(self, field_: descriptor_pb2.FieldDescriptorProto) -> str:
        return field_.json_name if self.json_names else field_.name

    def _described(self, schema: dict[str, Any], name: str) -> dict[str, Any]:
        return (
            {"description": self.protos.comments[name], **schema} if name in self.protos.comments else schema
        )

    def _enum(self, name: str) -> dict[str, Any]:
        values = self.protos.enums[name].value
        schema: dict[str, Any] = {"type": "string", "enum": [value.name for value in values]}
        if self.field_numbers:
            schema["x-protobuf-enum"] = {value.name: value.number for value in values}
        described = [
            f"{value.name}: {self.protos.comments[f'{name}.{value.name}']}"
            for value in values
            if f"{name}.{value.name}" in self.protos.comments
        ]
        text = " ".join(part for part in (self.protos.comments.get(name, ""), "; ".join(described)) if part)
        return {"description": text, **schema} if text else schema

    def _message(self, name: str) -> dict[str, Any]:
        message = self.protos.messages[name]
        properties = {
            self.name_of(item): self._described(self.field(item), f"{name}.{item.name}")
            for item in message.field
        }
        schema: dict[str, Any] = {"type": "object"}
        if name in self.protos.comments:
            schema["description"] = self.protos.comments[name]
        choices = [
            [item for item in message.field if item.HasField("oneof_index") and item.oneof_index == index]
            for index, _ in enumerate(message.oneof_decl)
        ]
        # a proto3 `optional` field is a oneof of its own: no choice to describe
        real = [members for members in choices if not (len(members) == 1 and members[0].proto3_optional)]
        if real:
            said = "; ".join(
                "at most one of " + ", ".join(self.name_of(item) for item in members) + " is set"
                for members in real
            )
            schema["description"] = f"{schema.get('description', '')} ({said})".strip()
        return {**schema, "properties": properties}

    def field(self, item: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if (
            item.type == _T.TYPE_MESSAGE
            and self.protos.messages.get(_type(item), _NO_MESSAGE).options.map_entry
        ):
            _, value = self.protos.messages[_type(item)].field
            return {"type": "object", "additionalProperties": self.single(value)}
        schema = self.single(item)
        if item.label == _T.LABEL_REPEATED:
            schema = {"type": "array", "items": schema}
        if self.field_numbers:
            schema["x-protobuf-field"] = item.number
        return schema

    def single(self, item: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if item.type in (_T.TYPE_MESSAGE, _T.TYPE_ENUM):
            return self.ref(_type(item))
        return dict(_SCALARS[item.type])


_NO_MESSAGE = descriptor_pb2.DescriptorProto()


ASYNCAPI_ABOUT = f"""
Generated by `{COMMAND}` from the services' subjects tables (services/<svc>/subjects.py) and the protos; do
not edit. The facts the platform publishes to NATS JetStream: subject `<prefix>.<domain>.<event>` (prefix
`{PREFIX}`, the OMS_SUBJECT_PREFIX setting), one stream per domain, `OMS_<DOMAIN>` (each channel's
x-jetstream-stream; x-jetstream-streams has their limits, the defaults of the settings STREAM_MAX_AGE_SECONDS,
STREAM_MAX_BYTES, STREAM_DUPLICATE_WINDOW_SECONDS and STREAM_REPLICAS, 3 copies in the production overlay; the
oldest events go first). The body is the binary protobuf message (content type {bus.PROTOBUF}), never JSON:
decode it as the message named in the Oms-Event-Type header (generated from protos/, or read from the
descriptor set gen/oms.pb). The payload schemas show the decoded message in the proto3 JSON mapping with
proto field names, as json_format.MessageToDict(message, preserving_proto_field_name=True) gives it (64-bit
integers as strings, enums by name, Timestamps as RFC 3339); x-protobuf-field is each field's number and
x-protobuf-enum each enum value's. Delivery is at least once: consume with a durable pull consumer, ack after
your own commit and deduplicate on event_id (docs/events.md, examples/consumer.py).
"""
OPENAPI_ABOUT = f"""
Generated by `{COMMAND}` from the google.api.http annotations of the services Envoy transcodes; do not edit.
The proto3 JSON mapping Envoy speaks: field names in lowerCamelCase (the proto names are accepted too),
64-bit integers as strings (numbers are accepted), enums by name, Timestamps as RFC 3339 UTC. Answers print
every scalar and list field, defaults included. An unknown body field or query parameter is refused with 400,
a body over 1 MiB with 413 (use the chunked uploads). Errors are google.rpc.Status in JSON: {{"code": <gRPC
code>, "message", "details"}}. The same methods answer native gRPC and gRPC-Web on the same port (x-oms-rpc
names each). Every call but the public ones needs a bearer token (docs/api.md, "Authentication"); each
method's roles and row scope are in x-oms-roles and x-oms-reach (services/gateway/domain/policy.py).
"""


def _prose(text: str) -> str:
    return " ".join(text.split())


# --- AsyncAPI ------------------------------------------------------------------------------------


def published() -> dict[str, tuple[str, list[str]]]:
    """Subject (under the prefix) → (its message, the services publishing it), from the services' tables."""
    subjects: dict[str, tuple[str, list[str]]] = {}
    for service, table in PUBLISHERS.items():
        for subject, message in table.items():
            known, by = subjects.setdefault(subject, (message, []))
            if known != message:
                raise ValueError(f"{subject} carries {known} and, from {service}, {message}")
            by.append(service)
    return dict(sorted(subjects.items()))


def _stream(domain: str) -> dict[str, Any]:
    limits = bus.StreamLimits()
    return {
        "subjects": f"{PREFIX}.{domain}.>",
        "storage": "file",
        "retention": "limits",
        "discard": "old",
        "maxAgeSeconds": int(limits.max_age_seconds),
        "maxBytes": limits.max_bytes,
        "duplicateWindowSeconds": int(limits.duplicate_window_seconds),
        "replicas": limits.replicas,
    }


def _headers() -> dict[str, Any]:
    return {
        "type": "object",
        "required": [bus.MSG_ID, bus.EVENT_TYPE, bus.CONTENT_TYPE],
        "properties": {
            bus.MSG_ID: {
                "type": "string",
                "description": "The event id (UUIDv7), equal to the message's event_id; JetStream drops a "
                "re-send with the same id within the stream's duplicate window. Deduplicate on it.",
            },
            bus.EVENT_TYPE: {"type": "string", "description": "The message's full proto name."},
            bus.CONTENT_TYPE: {"type": "string", "const": bus.PROTOBUF},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the request that caused the event (its trace id is the "
                "x-trace-id the HTTP/gRPC caller got back); absent when nothing was traced.",
            },
        },
    }


def _outbox_report() -> dict[str, Any]:
    """The JSON schema of services.kit.outbox.outbox_report, read off what it writes."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    sample = json.loads(outbox.outbox_report("orders", 1, 0.5, at))
    kinds = {str: "string", bool: "boolean", int: "integer", float: "number"}
    properties = {
        key: {"type": kinds[type(value)], **({"format": "date-time"} if value == at.isoformat() else {})}
        for key, value in sample.items()
    }
    return {"type": "object", "required": list(sample), "properties": properties}


def asyncapi(protos: Protos) -> dict[str, Any]:
    schemas = Schemas(protos, json_names=False, field_numbers=True)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for subject, (message, by) in published().items():
        if message not in protos.messages:
            raise ValueError(f"{subject} carries {message}, which no proto defines")
        short = message.rsplit(".", 1)[1]
        messages[message] = {
            "name": short,
            "title": message,
            "summary": protos.comments.get(message, ""),
            "contentType": bus.PROTOBUF,
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/EventHeaders"},
                    {"properties": {bus.EVENT_TYPE: {"const": message}}},
                ]
            },
            "payload": schemas.ref(message),
            "x-protobuf-message": message,
        }
        channels[subject] = {
            "address": bus.full_subject(PREFIX, subject),
            "description": f"Published by {', '.join(by)}. {protos.comments.get(message, '')}".strip(),
            "messages": {short: {"$ref": f"#/components/messages/{message}"}},
            "x-jetstream-stream": bus.stream_name(PREFIX, bus.domain_of(subject)),
        }
        operations[subject] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{subject}"},
            "messages": [{"$ref": f"#/channels/{subject}/messages/{short}"}],
        }
    report = outbox.OUTBOX_REPORT_SUBJECT
    messages["OutboxReport"] = {
        "name": "OutboxReport",
        "contentType": "application/json",
        "summary": "A service's outbox: events committed and not yet published, and the oldest one's age.",
        "payload": _outbox_report(),
    }
    channels[report] = {
        "address": bus.full_subject(PREFIX, report),
        "description": f"Core NATS, kept in no stream: each service ({', '.join(REPORTERS)}) says how its "
        "outbox stands every 5 s, from one replica; a report that stops coming means the service, its "
        "database or NATS is down.",
        "messages": {"OutboxReport": {"$ref": "#/components/messages/OutboxReport"}},
    }
    operations[report] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{report}"},
        "messages": [{"$ref": f"#/channels/{report}/messages/OutboxReport"}],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "OMS events",
            "version": _version(),
            "description": _prose(ASYNCAPI_ABOUT),
        },
        "defaultContentType": bus.PROTOBUF,
        "servers": {
            "local": {
                "host": "127.0.0.1:{port}",
                "protocol": "nats",
                "description": "`make run`'s NATS JetStream",
                "variables": {"port": {"description": "the one `make run`'s banner prints (OMS_NATS_URL)"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"EventHeaders": _headers(), **dict(sorted(schemas.components.items()))},
        },
        "x-jetstream-streams": {
            bus.stream_name(PREFIX, domain): _stream(domain)
            for domain in sorted({bus.domain_of(subject) for subject in published()})
        },
    }


# --- OpenAPI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One HTTP binding of an RPC, as Envoy's transcoder serves it."""

    service: str
    method: descriptor_pb2.MethodDescriptorProto
    verb: str
    template: str
    body: str
    response_body: str
    binding: int

    @property
    def rpc(self) -> str:
        return f"{self.service}/{self.method.name}"

    @property
    def path(self) -> str:
        """The OpenAPI path: `{path=**}` → `{path}`; a variable bound to literal segments is them."""
        return _VARIABLE.sub(
            lambda match: match[2] if _literal(match[2]) else "{" + match[1] + "}", self.template
        )

    @property
    def variables(self) -> list[tuple[str, str]]:
        """(field, segments) of each path variable, `*` when the template names none."""
        return [(match[1], match[2] or "*") for match in _VARIABLE.finditer(self.template)]


def _literal(segments: str | None) -> bool:
    return bool(segments) and "*" not in str(segments)


def transcoded_services() -> list[str]:
    """The services Envoy's transcoder is configured with (deploy/envoy/envoy.yaml)."""
    config = yaml.safe_load(envoy.TEMPLATE.read_text())
    transcoder = next(
        item for item in envoy._manager(config)["http_filters"] if item["name"] == envoy.TRANSCODER
    )
    return list(transcoder["typed_config"]["services"])


def routes(protos: Protos, services: list[str] | None = None) -> Iterator[Route]:
    for service in services if services is not None else transcoded_services():
        for method in protos.services[service].method:
            rule = method.options.Extensions[annotations_pb2.http]
            if rule.WhichOneof("pattern") is None or method.client_streaming:
                continue  # gRPC only (the client-streaming upload)
            for index, binding in enumerate([rule, *rule.additional_bindings]):
                verb, template = _pattern(binding)
                yield Route(service, method, verb, template, binding.body, binding.response_body, index)


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.lower(), rule.custom.path
    return str(kind), str(getattr(rule, str(kind)))


def _field_at(protos: Protos, message: str, path: str) -> descriptor_pb2.FieldDescriptorProto:
    found: descriptor_pb2.FieldDescriptorProto | None = None
    for part in path.split("."):
        found = next(item for item in protos.messages[message].field if item.name == part)
        message = _type(found)
    assert found is not None
    return found


def _query(
    schemas: Schemas,
    message: str,
    bound: set[str],
    proto_prefix: str = "",
    json_prefix: str = "",
    seen: tuple[str, ...] = (),
) -> Iterator[dict[str, Any]]:
    """The query parameters of the fields neither the path nor the body takes (nested ones dotted:
    `filter.createdFrom`, `page.pageSize`)."""
    for item in schemas.protos.messages[message].field:
        proto_path, json_path = f"{proto_prefix}{item.name}", f"{json_prefix}{item.json_name}"
        if proto_path in bound:
            continue
        kind = _type(item)
        if item.type == _T.TYPE_MESSAGE and kind not in _WELL_KNOWN:
            if item.label == _T.LABEL_REPEATED or kind in (*seen, message):
                continue  # repeated messages and maps cannot be written in a query, nor a loop
            yield from _query(schemas, kind, bound, f"{proto_path}.", f"{json_path}.", (*seen, message))
            continue
        parameter: dict[str, Any] = {"name": json_path, "in": "query", "schema": schemas.field(item)}
        if f"{message}.{item.name}" in schemas.protos.comments:
            parameter["description"] = schemas.protos.comments[f"{message}.{item.name}"]
        if item.label == _T.LABEL_REPEATED:
            parameter.update(style="form", explode=True)
        yield parameter


# HTTP status → the gRPC statuses it stands for (docs/api.md, "Errors")
_ERRORS = {
    "400": "INVALID_ARGUMENT (bad input: the message names the first wrong field, a google.rpc.BadRequest in "
    "details names every one; nothing was written), FAILED_PRECONDITION (illegal in the current state), "
    "malformed JSON, an unknown body field or query parameter",
    "401": "UNAUTHENTICATED: no or bad credentials (the same answer whatever failed)",
    "403": "PERMISSION_DENIED: the caller's roles may not call this method",
    "404": "NOT_FOUND: an unknown id or a row outside the caller's scope (the same answer); no such route",
    "413": "RESOURCE_EXHAUSTED: a body over 1 MiB (use the chunked uploads)",
    "429": "RESOURCE_EXHAUSTED: a rate limit or quota; retry after Retry-After seconds",
    "503": "UNAVAILABLE: a peer, the database or the rate limiter is down; retry after Retry-After",
    "default": "another gRPC status, e.g. 500 INTERNAL (the logs have the trace id), 504 DEADLINE_EXCEEDED",
}
_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "x-request-id": {
        "description": "Envoy's request id (yours, if you sent one).",
        "schema": {"type": "string"},
    },
    "x-trace-id": {
        "description": "The W3C trace id, also on the NATS events the call caused.",
        "schema": {"type": "string"},
    },
}


def _headers_of(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _error(status: str) -> str:
    return f"Error{status.capitalize()}"


def _error_responses(schemas: Schemas) -> dict[str, Any]:
    error = schemas.ref(STATUS)
    schemas.ref(BAD_REQUEST)
    return {
        _error(status): {
            "description": text,
            "headers": _headers_of(
                "x-request-id", "x-trace-id", *(("Retry-After",) if status in ("429", "503") else ())
            ),
            "content": {"application/json": {"schema": error}},
        }
        for status, text in _ERRORS.items()
    }


def _operation(schemas: Schemas, route: Route, operation_ids: set[str]) -> dict[str, Any]:
    protos = schemas.protos
    request, response = _type_name(route.method.input_type), _type_name(route.method.output_type)
    path_fields = {name for name, _ in route.variables}
    parameters: list[dict[str, Any]] = []
    for name, segments in route.variables:
        if _literal(segments):
            continue
        item = _field_at(protos, request, name)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schemas.single(item),
        }
        if segments == "**":
            parameter["description"] = "May span several path segments (slashes included)."
        parameters.append(parameter)
    body_fields: set[str] = set()
    request_body: dict[str, Any] | None = None
    if route.body == "*":
        body_fields = {item.name for item in protos.messages[request].field}
        whole = schemas.ref(request)
        schema = whole if not path_fields else _without(schemas, request, path_fields)
        request_body = {"required": True, "content": {"application/json": {"schema": schema}}}
    elif route.body:
        body_fields = {route.body}
        item = _field_at(protos, request, route.body)
        if _type(item) == HTTP_BODY:
            content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
        else:
            content = {"application/json": {"schema": schemas.field(item)}}
        request_body = {"required": True, "content": content}
    parameters += _query(schemas, request, path_fields | body_fields)
    ok: dict[str, Any]
    if route.response_body and _type(_field_at(protos, response, route.response_body)) == HTTP_BODY:
        ok = {
            "description": "The document itself, with its own content type (google.api.HttpBody).",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    else:
        schema = (
            schemas.field(_field_at(protos, response, route.response_body))
            if route.response_body
            else schemas.ref(response)
        )
        if route.method.server_streaming:
            schema = {"type": "array", "items": schema}
        streamed = (
            " A server stream: one JSON array of the messages." if route.method.server_streaming else ""
        )
        ok = {
            "description": f"OK: {response}.{streamed}",
            "content": {"application/json": {"schema": schema}},
        }
    ok["headers"] = _headers_of("x-request-id", "x-trace-id")
    rule = policy.rule_for(route.rpc)
    if rule is None:
        raise ValueError(f"{route.rpc} is transcoded but has no policy (services/gateway/domain/policy.py)")
    short = route.service.rsplit(".", 1)[1]
    operation_id = f"{short}_{route.method.name}" + (f"_{route.binding + 1}" if route.binding else "")
    if operation_id in operation_ids:
        raise ValueError(f"two routes are {operation_id}")
    operation_ids.add(operation_id)
    public = rule.public
    roles = (
        "none: public (a webhook checks its sender's signature itself)"
        if public
        else ", ".join(sorted(rule.roles))
    )
    description = " ".join(
        part
        for part in (
            protos.comments.get(f"{route.service}.{route.method.name}", ""),
            f"gRPC: `{route.rpc}`. Roles: {roles}; reach: {rule.reach}.",
        )
        if part
    )
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [short],
        "summary": route.method.name,
        "description": description,
        "parameters": parameters,
        **({"requestBody": request_body} if request_body else {}),
        "responses": {
            "200": ok,
            **{
                status: {"$ref": f"#/components/responses/{_error(status)}"}
                for status in _ERRORS
                if (status != "413" or request_body) and (status not in ("401", "403") or not public)
            },
        },
        "x-oms-rpc": route.rpc,
    }
    operation["x-oms-roles"] = sorted(rule.roles)
    operation["x-oms-reach"] = str(rule.reach)
    if public:
        operation["security"] = []
    return operation


def _type_name(name: str) -> str:
    return name.lstrip(".")


def _without(schemas: Schemas, message: str, taken: set[str]) -> dict[str, Any]:
    """The request message's schema without the fields its path carries."""
    schemas.ref(message)
    names = {item.json_name for item in schemas.protos.messages[message].field if item.name in taken}
    component = schemas.components[message]
    properties = {key: value for key, value in component["properties"].items() if key not in names}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if "description" in component:
        schema["description"] = component["description"]
    return schema


def openapi(protos: Protos) -> dict[str, Any]:
    schemas = Schemas(protos, json_names=True)
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    services = transcoded_services()
    for route in routes(protos, services):
        methods = paths.setdefault(route.path, {})
        if route.verb in methods:
            raise ValueError(f"{route.verb.upper()} {route.path} is bound twice")
        methods[route.verb] = _operation(schemas, route, operation_ids)
    responses = _error_responses(schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OMS HTTP/JSON API",
            "version": _version(),
            "description": _prose(OPENAPI_ABOUT),
        },
        "servers": [
            {"url": "http://127.0.0.1:8080", "description": "`make run` (Envoy; its banner says the port)"}
        ],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": name.rsplit(".", 1)[1], "description": protos.comments.get(name, "")}
            for name in services
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT: `POST /v1/tokens` (client credentials), `POST /v1/sessions` "
                    "(a console user), or locally `omsctl token --sub me --role ops`.",
                }
            },
            "responses": responses,
            "headers": _HEADERS,
            "schemas": dict(sorted(schemas.components.items())),
        },
    }


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


# --- the files -----------------------------------------------------------------------------------


def documents(protos: Protos | None = None) -> dict[Path, str]:
    """Each document's path and text, as `omsctl contracts` writes them."""
    protos = protos or Protos.load()
    return {
        ASYNCAPI: yaml.safe_dump(asyncapi(protos), sort_keys=False, allow_unicode=True, width=110),
        OPENAPI: json.dumps(openapi(protos), indent=1, ensure_ascii=False) + "\n",
    }


def stale(protos: Protos | None = None) -> list[Path]:
    return [
        path
        for path, text in documents(protos).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def run(check: bool = False) -> int:
    if check:
        behind = stale()
        for path in behind:
            print(
                f"{path.relative_to(ROOT)} is stale: run `{COMMAND}` (or `make contracts-docs`)",
                file=sys.stderr,
            )
        return 1 if behind else 0
    FOLDER.mkdir(parents=True, exist_ok=True)
    for path, text in documents().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0
