"""Server reflection, v1 and v1alpha, that can describe every method and field of the served protos.

grpcio-reflection serves only v1alpha and asks the descriptor pool for the file containing a symbol;
the upb pool finds services, messages and enums that way but not their members, so
`grpcurl describe pkg.Service.Method` answered "Symbol not found". A member's file is its parent's.
The v1 service's messages are the same on the wire as v1alpha's, so one servicer answers both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import _async, reflection_pb2

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"


def owning_symbol(pool: descriptor_pool.DescriptorPool, name: str) -> str:
    """`name` itself when the pool can find its file, else its parent when `name` is one of its members
    (a service's method, a message's field or nested type, an enum's value)."""
    try:
        pool.FindFileContainingSymbol(name)
        return name
    except KeyError:
        pass
    parent, _, member = name.rpartition(".")
    for find, members in (
        (pool.FindServiceByName, "methods_by_name"),
        (pool.FindMessageTypeByName, "fields_by_name"),
        (pool.FindMessageTypeByName, "nested_types_by_name"),
        (pool.FindMessageTypeByName, "enum_types_by_name"),
        (pool.FindEnumTypeByName, "values_by_name"),
    ):
        try:
            found: Any = find(parent)
        except KeyError:
            continue
        if member in getattr(found, members):
            return parent
    return name


class ReflectionServicer(_async.ReflectionServicer):
    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        return super()._file_containing_symbol(request, owning_symbol(self._pool, fully_qualified_name))


def enable(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    servicer = ReflectionServicer([*service_names, V1ALPHA, V1])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in (V1ALPHA, V1)
        )
    )
