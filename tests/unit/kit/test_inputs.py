from __future__ import annotations

import json

import pytest
from google.protobuf import struct_pb2

from oms.orders.v1 import orders_pb2
from services.kit import grpc_client, inputs
from services.kit.db_errors import database_error
from services.kit.errors import InvalidArgument


def _field_of(error: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return error.value.field


def test_a_nul_in_a_top_level_string_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        inputs.refuse_nul(orders_pb2.IngestOrderRequest(buyer_id="b\x00"))
    assert _field_of(refused) == "buyer_id"


def test_a_nul_in_a_nested_or_repeated_message_is_named_by_its_path() -> None:
    request = orders_pb2.IngestOrderRequest(buyer_id="ok")
    request.lines.add(sku="SKU-1", title="fine")
    request.lines.add(sku="SKU-2", title="bad\x00")
    with pytest.raises(InvalidArgument) as refused:
        inputs.refuse_nul(request)
    assert _field_of(refused) == "lines[1].title"
    request = orders_pb2.IngestOrderRequest()
    request.shipping_address.city = "Shen\x00zhen"
    with pytest.raises(InvalidArgument) as refused:
        inputs.refuse_nul(request)
    assert _field_of(refused) == "shipping_address.city"


def test_a_nul_inside_a_struct_value_is_found_through_its_map() -> None:
    payload = struct_pb2.Struct()
    payload.update({"buyer": {"name": "x\x00"}})
    request = orders_pb2.IngestChannelOrderRequest(payload=payload)
    with pytest.raises(InvalidArgument) as refused:
        inputs.refuse_nul(request)
    assert _field_of(refused).startswith("payload.fields[")


def test_a_clean_message_passes() -> None:
    request = orders_pb2.IngestOrderRequest(buyer_id="b-1")
    request.lines.add(sku="SKU-1", title="Mug 杯子")
    inputs.refuse_nul(request)


def test_json_nested_deeper_than_the_limit_is_refused_without_a_recursion_error() -> None:
    for depth in (65, 2_000, 200_000):
        with pytest.raises(InvalidArgument) as refused:
            inputs.loads('{"a":' * depth + "1" + "}" * depth, "payload_json")
        assert _field_of(refused) == "payload_json"
        assert "deeper" in refused.value.problem
    assert inputs.loads('{"a":' * 63 + "[1]" + "}" * 63, "payload_json") is not None


def test_json_with_a_nul_in_a_key_or_value_is_refused() -> None:
    for document in ({"a": "x\x00"}, {"a\x00": 1}, [["\x00"]]):
        with pytest.raises(InvalidArgument, match="NUL"):
            inputs.loads(json.dumps(document), "payload")


def test_text_that_is_not_json_or_not_utf8_is_refused_naming_the_field() -> None:
    for text in ("{", b'{"a": "\xff"}'):
        with pytest.raises(InvalidArgument) as refused:
            inputs.loads(text, "payload")
        assert _field_of(refused) == "payload"


def test_a_database_error_is_described_by_its_class_and_sqlstate_only() -> None:
    import asyncpg
    import sqlalchemy.exc

    cause = asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
    wrapped = sqlalchemy.exc.IntegrityError("INSERT INTO orders VALUES ($1)", ("13800000000",), cause)
    described = database_error(wrapped)
    assert described == "UniqueViolationError (SQLSTATE 23505)"
    assert database_error(ValueError("no")) is None


def test_a_server_stream_gets_no_default_deadline_from_the_channel() -> None:
    streams = grpc_client.server_streams("oms.orders.v1.OrdersService")
    assert streams == ["oms.orders.v1.OrdersService/ExportOrders"]
    configs = json.loads(grpc_client.service_config(5.0, streams=streams))["methodConfig"]
    assert configs[0]["timeout"] == "5.0s"
    assert configs[1]["name"] == [{"service": "oms.orders.v1.OrdersService", "method": "ExportOrders"}]
    assert "timeout" not in configs[1]


def test_a_logged_database_error_keeps_its_frames_but_not_the_statement_or_its_values() -> None:
    import logging
    import sys

    import asyncpg
    import sqlalchemy.exc

    from services.kit.logs import JsonFormatter

    statement, parameters = "INSERT INTO buyers VALUES ($1)", ("13800001111",)

    def insert() -> None:
        cause = asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
        raise sqlalchemy.exc.IntegrityError(statement, parameters, cause)

    try:
        insert()
    except sqlalchemy.exc.IntegrityError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "unhandled", (), sys.exc_info())
    line = JsonFormatter("test").format(record)
    assert "13800001111" not in line and "INSERT INTO" not in line
    assert "in insert" in line and "UniqueViolationError (SQLSTATE 23505)" in line
