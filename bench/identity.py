"""Identity benchmark (`make bench-identity`): what the signed assertion costs per call, in-process.

The gateway mints one assertion per forwarded call and the target verifies it in full; a service's
own assertion is minted about once a minute and its verification is cached. Prints `name: value unit`.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable

from bench.common import identity_env
from services.kit.identity import IdentitySettings, Principal, Signer, Verifier

BATCHES = int(os.environ.get("BENCH_BATCHES", "30"))
BATCH = 200


def per_call_us(work: Callable[[], object]) -> float:
    """The best of many short batches: on a shared machine the fastest batch is the one that ran
    uninterrupted, which is the cost of the work itself."""
    for _ in range(BATCH):  # warm up
        work()
    best = float("inf")
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(BATCH):
            work()
        best = min(best, (time.perf_counter() - started) / BATCH)
    return best * 1e6


def main() -> None:
    gateway = Signer(IdentitySettings.from_env("gateway", identity_env("gateway")))
    orders = Signer(IdentitySettings.from_env("orders", identity_env("orders")))
    verifier = Verifier.from_settings(IdentitySettings.from_env("inventory", identity_env("inventory")))
    agent = Principal("agent-7", "user", frozenset({"cs_agent"}), agent_id="agent-7", channel="TAOBAO")
    token = gateway.mint(agent, "orders")
    own = orders.own("inventory")

    header, payload, signature = token.split(".")
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    public = verifier.trusted["bench-gateway"].public_key
    signed = f"{header}.{payload}".encode()

    def uncached_own() -> object:
        verifier._verified.clear()
        return verifier.verify(own, "inventory")

    print(f"gateway_sign_us: {per_call_us(lambda: gateway.mint(agent, 'orders')):.1f} us")
    print(f"gateway_verify_us: {per_call_us(lambda: verifier.verify(token, 'orders')):.1f} us")
    print(f"service_own_assertion_us: {per_call_us(lambda: orders.own('inventory')):.2f} us")
    print(f"service_verify_cached_us: {per_call_us(lambda: verifier.verify(own, 'inventory')):.2f} us")
    print(f"service_verify_uncached_us: {per_call_us(uncached_own):.1f} us")
    print(f"raw_ed25519_verify_us: {per_call_us(lambda: public.verify(raw_signature, signed)):.1f} us")
    print(f"assertion_bytes: {len(token)} bytes")


if __name__ == "__main__":
    main()
