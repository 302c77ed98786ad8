"""The documents integrators build on (docs/contracts/, docs/contracts.md): generated from the code as it
is now, naming only what the services publish and what Envoy transcodes, with schemas real messages fit."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sysconfig
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from omsctl import contracts, embedded, envoy
from services.kit import outbox

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sysconfig.get_path("scripts"))
# a subject as the mappers write it: `orders.created`
SUBJECT_LITERAL = re.compile(r"\"((?:alerts|orders|inventory|routing|logistics|aftersales)\.[a-z_]+)\"")


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(contracts.ASYNCAPI.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return json.loads(contracts.OPENAPI.read_text())  # type: ignore[no-any-return]


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "oms.pb").read_bytes())


def test_the_checked_in_documents_are_what_the_generator_writes_from_the_protos_now() -> None:
    for path, text in contracts.documents().items():
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `{contracts.COMMAND}`"
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale (a proto, a subjects table or the policy changed): "
            f"run `{contracts.COMMAND}` (or `make contracts-docs`) and commit it"
        )


def test_the_asyncapi_document_has_every_subject_the_services_publish_and_nothing_else(
    asyncapi: dict[str, Any],
) -> None:
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    published = {subject for table in contracts.PUBLISHERS.values() for subject in table}
    assert addresses == {f"oms.{subject}" for subject in (*published, outbox.OUTBOX_REPORT_SUBJECT)}
    for subject, channel in asyncapi["channels"].items():
        for message in channel["messages"].values():
            name = message["$ref"].rsplit("/", 1)[1]
            if subject in published:
                assert all(table.get(subject, name) == name for table in contracts.PUBLISHERS.values())


def test_every_service_that_publishes_has_a_table_and_its_mappers_publish_only_its_subjects() -> None:
    with_tables = {path.parent.name for path in (ROOT / "services").glob("*/subjects.py")}
    assert with_tables == set(contracts.PUBLISHERS)
    for service, table in contracts.PUBLISHERS.items():
        # every subject the encoder can write, also on paths no test happens to run
        written = set(SUBJECT_LITERAL.findall((ROOT / "services" / service / "mappers.py").read_text()))
        assert written == set(table), f"services/{service}: mappers write {sorted(written ^ set(table))}"
    # the gateway publishes no event of its own
    assert not SUBJECT_LITERAL.findall((ROOT / "services" / "gateway" / "mappers.py").read_text())


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_every_message_and_schema_the_documents_name_exists_in_the_protos(
    asyncapi: dict[str, Any], openapi: dict[str, Any]
) -> None:
    protos = contracts.Protos.load()
    for name, message in asyncapi["components"]["messages"].items():
        if message["contentType"] == "application/protobuf":
            assert message["x-protobuf-message"] == name
            assert name in protos.messages, f"{name} is no proto message"
    for document in (asyncapi, openapi):
        for name in document["components"]["schemas"]:
            assert name in protos.messages or name in protos.enums or name == "EventHeaders", name
        for ref in set(_refs(document)):
            assert _resolve(document, ref) is not None, ref


def _strict(schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas with no property left undescribed: a sample with a field the schema lacks fails."""
    strict = copy.deepcopy(schemas)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict)
    return strict


def _validator(schemas: dict[str, Any], name: str) -> Draft202012Validator:
    root = {"components": {"schemas": _strict(schemas)}}
    registry: Registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(root))
    Draft202012Validator.check_schema(root["components"]["schemas"][name])
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


def _classes() -> dict[str, type[Message]]:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set().file:
        pool.Add(file)
    names = contracts.Protos.load().messages
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name)) for name in names}


def _filled(message: Message, depth: int = 0) -> Message:
    """Every field set (one item per list and map), as deep as 4 messages down."""
    for item in message.DESCRIPTOR.fields:
        if item.containing_oneof is not None and item.containing_oneof.fields[0] is not item:
            continue  # one choice of a oneof
        nested = item.message_type
        kind = nested.full_name if nested is not None else ""
        is_map = nested is not None and nested.GetOptions().map_entry
        if kind == "google.protobuf.Any" or (kind and depth >= 4 and not is_map):
            continue
        if nested is not None and is_map:
            key, value = nested.fields
            entries = getattr(message, item.name)
            sample = _sample(key)
            if value.message_type is not None:
                _filled(entries[sample], depth + 1)
            else:
                entries[sample] = _sample(value)
        elif kind == "google.protobuf.Timestamp":
            target = getattr(message, item.name)
            (target.add() if item.is_repeated else target).FromJsonString("2026-11-21T08:00:00Z")
        elif kind == "google.protobuf.Struct":
            getattr(message, item.name).update({"a": "b"})
        elif item.message_type is not None:
            target = getattr(message, item.name)
            _filled(target.add() if item.is_repeated else target, depth + 1)
        elif item.is_repeated:
            getattr(message, item.name).append(_sample(item))
        else:
            setattr(message, item.name, _sample(item))
    return message


def _sample(item: Any) -> Any:
    if item.enum_type is not None:
        return item.enum_type.values[-1].number
    return {
        item.TYPE_BOOL: True,
        item.TYPE_STRING: "x",
        item.TYPE_BYTES: b"x",
        item.TYPE_DOUBLE: 1.5,
        item.TYPE_FLOAT: 1.5,
    }.get(item.type, 7)


def test_real_event_messages_fit_the_asyncapi_schemas_decoded_with_proto_names(
    asyncapi: dict[str, Any],
) -> None:
    classes = _classes()
    schemas = asyncapi["components"]["schemas"]
    for name, message in asyncapi["components"]["messages"].items():
        if message["contentType"] != "application/protobuf":
            continue
        decoded = json_format.MessageToDict(
            _filled(classes[name]()),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        errors = [error.message for error in _validator(schemas, name).iter_errors(decoded)]
        assert not errors, f"{name}: {errors[:3]}"


def test_an_outbox_report_fits_its_schema(asyncapi: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    schema = asyncapi["components"]["messages"]["OutboxReport"]["payload"]
    report = json.loads(outbox.outbox_report("routing", 100_001, 3.25, datetime.now(UTC)))
    Draft202012Validator(_strict({"s": schema})["s"]).validate(report)


def test_every_request_and_answer_fits_the_openapi_schemas_in_the_json_mapping(
    openapi: dict[str, Any],
) -> None:
    classes = _classes()
    schemas = openapi["components"]["schemas"]
    checked = 0
    for name in schemas:
        if name not in classes:
            continue  # an enum
        printed = json.loads(
            json_format.MessageToJson(_filled(classes[name]()), always_print_fields_with_no_presence=True)
        )
        errors = [error.message for error in _validator(schemas, name).iter_errors(printed)]
        assert not errors, f"{name}: {errors[:3]}"
        checked += 1
    assert checked > 250


def _normalised(template: str) -> str:
    """A transcoder template as an OpenAPI path: `{x=**}` → `{x}`, `{x=openapi.json}` → `openapi.json`."""
    return re.sub(
        r"\{([^}=]+)(?:=([^}]*))?\}",
        lambda m: m[2] if m[2] and "*" not in m[2] else "{" + m[1] + "}",
        template,
    )


def test_the_openapi_document_has_every_route_envoy_transcodes_and_nothing_else(
    openapi: dict[str, Any],
) -> None:
    config = envoy.render(
        envoy.TEMPLATE, listen_port=1, admin_port=2, gateway_host="g", gateway_port=3, descriptor=Path("x")
    )
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    transcoder = next(f for f in manager["http_filters"] if f["name"] == envoy.TRANSCODER)
    transcoded = set(transcoder["typed_config"]["services"])
    expected = set()
    for file in descriptor_set().file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in transcoded:
                continue
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in [rule, *rule.additional_bindings] if rule.WhichOneof("pattern") else []:
                    kind = binding.WhichOneof("pattern")
                    verb, path = (
                        (binding.custom.kind.lower(), binding.custom.path)
                        if kind == "custom"
                        else (kind, getattr(binding, str(kind)))
                    )
                    expected.add((verb, _normalised(path), f"{file.package}.{service.name}/{method.name}"))
    documented = {
        (verb, path, operation["x-oms-rpc"])
        for path, operations in openapi["paths"].items()
        for verb, operation in operations.items()
    }
    assert documented == expected
    assert ("get", "/v1/openapi.json", "oms.gateway.v1.GatewayService/GetConsoleAsset") in documented


@pytest.fixture(scope="module")
def edge_without_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Envoy with the real config and its gateway unreachable: a route it transcodes answers 503."""
    listen, admin = embedded.free_port(), embedded.free_port()
    config = envoy.render(
        envoy.TEMPLATE,
        listen_port=listen,
        admin_port=admin,
        gateway_host="127.0.0.1",
        gateway_port=embedded.free_port(),
        descriptor=ROOT / "gen" / "oms.pb",
        env={},
    )
    path = envoy.write(config, tmp_path_factory.mktemp("edge") / "envoy.yaml")
    process = subprocess.Popen(
        [str(BIN / "envoy"), "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        embedded.wait_for_port(listen, 30, process)
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.terminate()
        process.wait(10)


def _example(schema: dict[str, Any], openapi: dict[str, Any]) -> str:
    """A value of the schema as a path segment or query parameter is written."""
    if "$ref" in schema:
        return _example(_resolve(openapi, schema["$ref"]), openapi)
    if "enum" in schema:
        return str(schema["enum"][-1])
    if schema.get("type") == "array":
        return _example(schema["items"], openapi)
    if schema.get("type") in ("integer", "number") or schema.get("format") in ("int64", "uint64"):
        return "1"
    if schema.get("type") == "boolean":
        return "true"
    if schema.get("format") == "date-time":
        return "2026-11-21T08:00:00Z"
    return "1s" if "pattern" in schema else "x"  # a Duration, or any text


def test_envoy_transcodes_every_documented_route_with_every_documented_query_parameter(
    openapi: dict[str, Any], edge_without_gateway: str
) -> None:
    """Sent through Envoy, every operation reaches the (unreachable) gateway: 503. A route Envoy does not
    serve would be 404, a query parameter its request message lacks 400."""
    answers = {}
    for path, operations in openapi["paths"].items():
        for verb, operation in operations.items():
            url, query = path, []
            for parameter in operation["parameters"]:
                value = _example(parameter["schema"], openapi)
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", value)
                else:
                    query.append(f"{parameter['name']}={urllib.parse.quote(value)}")
            body, headers = None, {}
            if "requestBody" in operation:
                raw = "*/*" in operation["requestBody"]["content"]
                body = b"x" if raw else b"{}"
                headers["content-type"] = "text/plain" if raw else "application/json"
            request = urllib.request.Request(
                f"{edge_without_gateway}{url}" + (f"?{'&'.join(query)}" if query else ""),
                data=body,
                method=verb.upper(),
                headers=headers,
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    answers[f"{verb.upper()} {url}"] = (reply.status, b"")
            except urllib.error.HTTPError as error:
                answers[f"{verb.upper()} {url}"] = (error.code, error.read()[:200])
    wrong = {route: answer for route, answer in answers.items() if answer[0] != 503}
    assert not wrong, wrong
    assert len(answers) > 120
