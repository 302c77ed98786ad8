"""Benchmarks: each prints its figures as `name: value unit`, one per line."""

import omsctl  # noqa: F401 - gRPC's fork handlers off before any benchmark imports grpc (see omsctl)
