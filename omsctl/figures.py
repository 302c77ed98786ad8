"""`omsctl status`'s figures: each service's /metrics scraped and read with prometheus_client's parser.

Since the process started: calls answered, server errors, refusals (the caller's fault: a bad field,
an unknown order, no permission), the 99th percentile latency from the histogram's buckets (as
Prometheus' `histogram_quantile` estimates it), and the outbox's depth and oldest event.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# the service failed the call; any other code but OK is a refusal the caller caused
SERVER_ERRORS = frozenset(
    {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"}
)


@dataclass(frozen=True)
class Figures:
    requests: int
    errors: int
    refused: int
    p99_seconds: float | None
    outbox_unpublished: int | None
    outbox_oldest_seconds: float | None


def scrape(address: str, timeout: float = 1.0) -> str | None:
    """The text a service's `/metrics` answers; None when it does not."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as reply:
            return str(reply.read().decode("utf-8"))
    except OSError:
        return None


def figures_of(text: str) -> Figures:
    requests = errors = refused = 0
    buckets: dict[float, float] = {}
    unpublished: int | None = None
    oldest: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "oms_grpc_server_handled_total":
                count = int(sample.value)
                requests += count
                code = sample.labels.get("grpc_code", "")
                if code in SERVER_ERRORS:
                    errors += count
                elif code != "OK":
                    refused += count
            elif sample.name == "oms_grpc_server_handling_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "oms_outbox_unpublished":
                unpublished = int(sample.value)
            elif sample.name == "oms_outbox_oldest_age_seconds":
                oldest = sample.value
    return Figures(requests, errors, refused, quantile(0.99, sorted(buckets.items())), unpublished, oldest)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """`histogram_quantile`: the bucket holding the q-th call, interpolated linearly within it; the
    highest finite bound when it falls in +Inf; None without calls."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def lines(services: Iterable[tuple[str, str]]) -> list[str]:
    """One line per (name, metrics address)."""
    shown = []
    for name, address in services:
        text = scrape(address)
        if text is None:
            shown.append(f"  {name:<10} metrics at http://{address}/metrics do not answer")
            continue
        shown.append(f"  {name:<10} {describe(figures_of(text))}")
    return shown


def describe(figures: Figures) -> str:
    p99 = "-" if figures.p99_seconds is None else f"{figures.p99_seconds * 1000:.1f} ms"
    outbox = "-" if figures.outbox_unpublished is None else str(figures.outbox_unpublished)
    if figures.outbox_oldest_seconds:
        outbox += f" (oldest {figures.outbox_oldest_seconds:.1f} s)"
    return (
        f"requests {figures.requests:<7} errors {figures.errors:<4} refused {figures.refused:<5} "
        f"p99 {p99:<9} outbox {outbox}"
    )
