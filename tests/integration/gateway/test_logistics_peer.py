"""The gateway's calls to logistics for carriers' pushes, against stand-ins of logistics served over real
gRPC (the kit's server, checking the gateway's assertion): pushes of one sender that arrive together go
in shared `ReportTrackingBatch` calls and each gets its own answer or its own failure; two senders never
share a call; a logistics without the batch call (an older version) is called push by push."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from oms.common.v1 import common_pb2
from oms.logistics.v1 import logistics_pb2 as pb
from oms.logistics.v1 import logistics_pb2_grpc
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.principal import Caller
from services.gateway.domain.tracking_pushes import pusher_principal
from services.gateway.gate import Gate
from services.gateway.peers import LogisticsPeer
from services.kit import identity as kit_identity
from tests import identity

pytestmark = pytest.mark.timeout(30)
SERVICE = pb.DESCRIPTOR.services_by_name["LogisticsService"].full_name


def gate() -> Gate:
    # only the signer matters for what is forwarded
    return Gate(None, {}, 300, None, None, {}, lambda: None, identity.signer())  # type: ignore[arg-type]


def answer(request: pb.ReportTrackingRequest) -> pb.ReportTrackingResponse:
    """Each push says what it is answered: {"nodes": n} records n nodes; {"fail": true} is refused."""
    sent = json.loads(request.body)
    return pb.ReportTrackingResponse(nodes_recorded=sent["nodes"], quarantine_id=sent.get("q", ""))


class BatchingLogistics(logistics_pb2_grpc.LogisticsServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []  # (sender, the pushes' node counts)

    async def ReportTrackingBatch(self, request: pb.ReportTrackingBatchRequest, context: Any) -> Any:
        sender = kit_identity.current().subject
        self.calls.append((sender, [json.loads(push.body)["nodes"] for push in request.pushes]))
        await asyncio.sleep(0.05)  # a transaction's time: what arrives meanwhile waits for the next call
        outcomes = []
        for push in request.pushes:
            if json.loads(push.body).get("fail"):
                error = common_pb2.ItemError(
                    code=grpc.StatusCode.UNAVAILABLE.value[0], message="the database went away"
                )
                outcomes.append(pb.ReportTrackingOutcome(error=error))
            else:
                outcomes.append(pb.ReportTrackingOutcome(taken=answer(push)))
        return pb.ReportTrackingBatchResponse(outcomes=outcomes)


class OlderLogistics(logistics_pb2_grpc.LogisticsServiceServicer):
    """A logistics from before the batch call: ReportTrackingBatch is UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.singles = 0

    async def ReportTracking(self, request: pb.ReportTrackingRequest, context: Any) -> Any:
        self.singles += 1
        return answer(request)


@asynccontextmanager
async def served(stand_in: logistics_pb2_grpc.LogisticsServiceServicer) -> AsyncIterator[grpc.aio.Channel]:
    """The stand-in behind the kit's server (the gateway's assertion checked), and a channel to it."""

    def register(server: grpc.aio.Server) -> None:
        logistics_pb2_grpc.add_LogisticsServiceServicer_to_server(stand_in, server)

    async with identity.served(SERVICE, register) as address, grpc.aio.insecure_channel(address) as channel:
        yield channel


def push(nodes: int, **more: Any) -> bytes:
    return json.dumps({"nodes": nodes, **more}).encode()


def sender(carrier: str) -> Caller:
    return Caller(pusher_principal(carrier), "10.0.0.1", f"r-{carrier}")


async def test_pushes_arriving_together_share_calls_and_each_gets_its_own_answer() -> None:
    stand_in = BatchingLogistics()
    async with served(stand_in) as channel:
        peer = LogisticsPeer(gate(), channel)
        replies = await asyncio.gather(
            *(peer.report_tracking(sender("sf"), "sf", "application/json", push(n)) for n in range(40))
        )
    assert [reply.nodes_recorded for reply in replies] == list(range(40))
    assert len(stand_in.calls) < 40 and peer.batches == len(stand_in.calls)
    assert sorted(n for _, nodes in stand_in.calls for n in nodes) == list(range(40))  # each sent once
    assert {who for who, _ in stand_in.calls} == {"carrier/sf"}


async def test_one_push_refused_in_a_batch_fails_alone_and_two_senders_never_share_a_call() -> None:
    stand_in = BatchingLogistics()
    async with served(stand_in) as channel:
        peer = LogisticsPeer(gate(), channel)
        sent = [
            peer.report_tracking(
                sender("sf" if n % 2 else "kuaidi100"), "sf", "application/json", push(n, fail=n == 7)
            )
            for n in range(20)
        ]
        replies = await asyncio.gather(*sent, return_exceptions=True)
    failed = replies[7]
    assert isinstance(failed, UpstreamFailure) and failed.code == "UNAVAILABLE"
    assert failed.details == "the database went away"
    assert [reply.nodes_recorded for n, reply in enumerate(replies) if n != 7] == [  # type: ignore[union-attr]
        n for n in range(20) if n != 7
    ]
    assert {who for who, _ in stand_in.calls} == {"carrier/sf", "carrier/kuaidi100"}
    for who, nodes in stand_in.calls:
        assert all((n % 2 == 1) == (who == "carrier/sf") for n in nodes), (who, nodes)


async def test_a_logistics_without_the_batch_call_is_called_push_by_push() -> None:
    stand_in = OlderLogistics()
    async with served(stand_in) as channel:
        peer = LogisticsPeer(gate(), channel)
        first = await asyncio.gather(
            *(peer.report_tracking(sender("sf"), "sf", "application/json", push(n)) for n in range(5))
        )
        assert not peer.batched
        later = await peer.report_tracking(sender("sf"), "sf", "application/json", push(9, q="q-1"))
    assert [reply.nodes_recorded for reply in first] == list(range(5))
    assert (later.nodes_recorded, later.quarantine_id) == (9, "q-1")
    assert stand_in.singles == 6


async def test_logistics_down_fails_every_push_of_the_call_with_its_code() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:  # nothing listens on the discard port
        peer = LogisticsPeer(gate(), channel)
        replies = await asyncio.gather(
            *(peer.report_tracking(sender("sf"), "sf", "application/json", push(n)) for n in range(3)),
            return_exceptions=True,
        )
    assert all(isinstance(reply, UpstreamFailure) and reply.code == "UNAVAILABLE" for reply in replies)
