"""The OpenAPI document as the platform serves it, and real answers against it (docs/contracts.md)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from examples import http_client
from omsctl import contracts
from omsctl.stack import Platform
from tests.e2e.conftest import bearer


def _closed(node: Any) -> Any:
    if isinstance(node, dict):
        closed = {key: _closed(value) for key, value in node.items()}
        return {"additionalProperties": False, **closed} if "properties" in node else closed
    return [_closed(value) for value in node] if isinstance(node, list) else node


def _strict_validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """The document's schema of `name`, closed: an answer with a field the document lacks fails."""
    root = {"components": {"schemas": _closed(document["components"]["schemas"])}}
    registry: Registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(root))
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


@pytest.mark.parametrize("path", ["/v1/openapi.json", "/console/openapi.json"])
def test_the_gateway_serves_the_checked_in_openapi_document_to_anyone(platform: Platform, path: str) -> None:
    with urllib.request.urlopen(f"http://{platform.endpoints['envoy']}{path}", timeout=10) as reply:
        assert reply.headers["content-type"] == "application/json"
        data = reply.read()
    assert data == contracts.OPENAPI.read_bytes()
    assert "post" in json.loads(data)["paths"]["/v1/orders"]


def test_the_example_client_creates_and_reads_an_order_and_the_answers_fit_the_document(
    platform: Platform,
) -> None:
    document = json.loads(contracts.OPENAPI.read_text())
    client = http_client.Client(f"http://{platform.endpoints['envoy']}", bearer(platform, "ops"))
    order = {**http_client.DEMO_ORDER, "channelOrderId": f"E2E-OAS-{uuid.uuid4().hex[:10]}"}
    created = client.create_order(order)
    _strict_validator(document, "oms.orders.v1.IngestOrderResponse").validate(created)
    read = client.get_order(created["order"]["orderId"])
    _strict_validator(document, "oms.orders.v1.GetOrderResponse").validate(read)
    assert read["order"]["channelOrderId"] == order["channelOrderId"]
    with pytest.raises(http_client.ApiError) as bad:
        client.create_order({**order, "lines": [{**order["lines"][0], "quantity": 0}]})
    _strict_validator(document, contracts.STATUS).validate(bad.value.body)
    assert (bad.value.status, bad.value.fields) == (400, ["lines[0].quantity"])
    with pytest.raises(http_client.ApiError) as unknown:
        client.get_order("01900000-0000-7000-8000-000000000000")
    assert (unknown.value.status, unknown.value.code) == (404, 5)


def test_the_example_client_runs_as_its_readme_says(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMS_HTTP", f"http://{platform.endpoints['envoy']}")
    monkeypatch.setenv("OMS_TOKEN", bearer(platform, "ops"))
    assert http_client.main() == 0
    lines = capsys.readouterr().out.splitlines()
    starts = (
        "created ",
        "the same channel order again: ",
        "read back: ",
        "a bad order: 400, fields ['lines[0].quantity']",
        "an unknown order: 404",
    )
    assert len(lines) == len(starts) and all(map(str.startswith, lines, starts)), lines
    order_id = lines[0].split()[1]
    assert lines[0].endswith("(created: True, outcome INGEST_OUTCOME_CREATED)")
    assert lines[1] == f"the same channel order again: {order_id} (created: False)"
    assert lines[2].endswith("total 18600 CNY")
