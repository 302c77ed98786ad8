"""Logistics benchmark (`make bench-logistics`): the real logistics process and the carrier sandbox at
50 ms latency and 5 % failures on every carrier; one CreateWaybills action of 1,000 shipments spread
over SF, Kuaidi100's ZTO/YTO/EMS/JD and Cainiao's STO/Yunda, timed until every item is settled, then
checked against the sandbox's own record of the waybills it issued (servicer level: not through Envoy).

Prints `name: value unit` lines: waybill_batch_1000_s, waybills_duplicated, waybills_lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

from bench.common import bench_stack, client_channel
from oms.common.v1 import common_pb2
from oms.logistics.v1 import logistics_pb2 as pb
from oms.logistics.v1 import logistics_pb2_grpc
from omsctl import embedded
from omsctl.stack import ROOT
from services.kit.sealing import KeyRing

SHIPMENTS = int(os.environ.get("BENCH_SHIPMENTS", "1000"))
PLAN = (("SF", 0.3), ("ZTO", 0.2), ("YTO", 0.1), ("EMS", 0.1), ("JD", 0.1), ("STO", 0.1), ("YUNDA", 0.1))
CREDENTIALS = {
    "SF_PARTNER_ID": "BENCH",
    "SF_CHECKWORD": "bench-sf-checkword",
    "KUAIDI100_KEY": "bench-k100-key",
    "KUAIDI100_SECRET": "bench-k100-secret",
    "KUAIDI100_CUSTOMER": "BENCHCUSTOMER",
    "CAINIAO_APP_KEY": "34567890",
    "CAINIAO_APP_SECRET": "bench-cainiao-secret",
}
SANDBOX_FLAGS = {
    "--sf-partner-id": "SF_PARTNER_ID",
    "--sf-checkword": "SF_CHECKWORD",
    "--kuaidi100-key": "KUAIDI100_KEY",
    "--kuaidi100-secret": "KUAIDI100_SECRET",
    "--kuaidi100-customer": "KUAIDI100_CUSTOMER",
    "--cainiao-app-key": "CAINIAO_APP_KEY",
    "--cainiao-app-secret": "CAINIAO_APP_SECRET",
}


def start_sandbox() -> tuple[subprocess.Popen[bytes], str]:
    port = embedded.free_port()
    flags = [f"{flag}={CREDENTIALS[name]}" for flag, name in SANDBOX_FLAGS.items()]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandboxes.carriers",
            "--host=127.0.0.1",
            f"--port={port}",
            "--seed=7",
            "--set=all.latency_ms=50",
            "--set=all.failure_rate=0.05",
            "--set=all.push_enabled=false",
            *flags,
        ],
        cwd=ROOT,
        env=embedded.python_env(ROOT, {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"the carrier sandbox did not start: {line!r}")
    return process, line.removeprefix("listening on ").strip()


def issued(sandbox: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sandbox}/_control/waybills", timeout=30) as response:
        return list(json.load(response)["waybills"])


def order(number: int, carrier: str) -> pb.CreateShipmentsRequest:
    return pb.CreateShipmentsRequest(
        order_id=f"bench-{number}",
        customer_id=f"c-{number % 97}",
        channel="TAOBAO",
        address=common_pb2.Address(
            recipient_name="张三",
            phone="13900000000",
            province="上海市",
            city="上海市",
            district="浦东新区",
            detail="世纪大道 1 号",
        ),
        shipments=[
            pb.PlannedShipment(
                warehouse_id="WH-SH",
                carrier=carrier,
                lines=[pb.ShipmentLine(sku="TEA", title="龙井茶", quantity=1)],
                origin=common_pb2.Address(
                    province="上海市", city="上海市", district="青浦区", detail="华新镇 1 号"
                ),
            )
        ],
    )


async def run(address: str, sandbox: str) -> None:
    carriers = [carrier for carrier, share in PLAN for _ in range(round(SHIPMENTS * share))][:SHIPMENTS]
    async with client_channel(address) as channel:
        stub = logistics_pb2_grpc.LogisticsServiceStub(channel)
        gate = asyncio.Semaphore(32)

        async def one(number: int, carrier: str) -> str:
            async with gate:
                reply = await stub.CreateShipments(order(number, carrier), timeout=30)
            return reply.shipments[0].shipment_id

        ids = await asyncio.gather(*(one(n, c) for n, c in enumerate(carriers)))
        started = time.perf_counter()
        queued = await stub.CreateWaybills(pb.CreateWaybillsRequest(shipment_ids=ids), timeout=30)
        answered = time.perf_counter() - started
        while True:
            batch = (
                await stub.GetWaybillBatch(pb.GetWaybillBatchRequest(batch_id=queued.batch_id), timeout=30)
            ).batch
            if batch.finished:
                break
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"the batch did not finish in 300 s: {batch.pending} pending")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    at_carriers = issued(sandbox)
    per_order = Counter(w["order_id"] for w in at_carriers)
    numbers = {w["order_id"]: w["waybill_no"] for w in at_carriers}
    ours = {item.shipment_id: item for item in batch.items}
    duplicated = sum(count - 1 for order_id, count in per_order.items() if order_id in ours)
    recorded_wrong = sum(
        1
        for sid, item in ours.items()
        if item.state == pb.WAYBILL_STATE_CREATED and numbers.get(sid) != item.waybill_no
    )
    made_but_unrecorded = sum(
        1 for sid, item in ours.items() if sid in numbers and item.state != pb.WAYBILL_STATE_CREATED
    )
    retried = sum(1 for item in batch.items if item.attempts > 1)
    print(f"waybill_batch_1000_s: {elapsed:.2f} s")
    print(f"waybill_batch_answered_ms: {answered * 1000:.0f} ms")
    print(f"waybills_per_s: {batch.created / elapsed:.0f} waybills/s")
    print(f"waybills_created: {batch.created} waybills")
    print(f"waybills_retried: {retried} waybills")
    print(f"waybills_dead_lettered: {batch.dead} waybills")
    print(f"waybills_duplicated: {duplicated} waybills")
    print(f"waybills_lost: {recorded_wrong + made_but_unrecorded + batch.dead} waybills")


def main() -> None:
    sandbox_process, sandbox = start_sandbox()
    try:
        with bench_stack() as bench:
            logistics = bench.start(
                "logistics",
                {
                    "DATABASE_URL": bench.database("logistics"),
                    "PII_KEYS": f"k1:{KeyRing.generate_key()}",
                    "PII_ACTIVE_KEY": "k1",
                    "PII_HASH_KEY": KeyRing.generate_key(),
                    "CARRIER_API_URL": sandbox,
                    "KUAIDI100_PUSH_SALT": "bench-salt",
                    **CREDENTIALS,
                },
            )
            asyncio.run(run(logistics, sandbox))
    finally:
        sandbox_process.terminate()
        sandbox_process.wait(10)


if __name__ == "__main__":
    main()
