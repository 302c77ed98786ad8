"""Identity benchmark (`make bench-identity`): what the signed assertion costs per call, in-process.

The gateway mints one assertion per forwarded call and the target verifies it in full; a service's
own assertion is minted about once a minute and its verification is cached. Prints `name: value unit`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bench.common import identity_env
from services.kit.identity import IdentitySettings, Principal, Signer, Verifier

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5000"))


def per_call_us(work: Callable[[], object], rounds: int = ROUNDS) -> float:
    for _ in range(min(rounds, 200)):  # warm up
        work()
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    gateway = Signer(IdentitySettings.from_env("gateway", identity_env("gateway")))
    orders = Signer(IdentitySettings.from_env("orders", identity_env("orders")))
    verifier = Verifier.from_settings(IdentitySettings.from_env("inventory", identity_env("inventory")))
    agent = Principal("agent-7", "user", frozenset({"cs_agent"}), agent_id="agent-7", channel="TAOBAO")
    token = gateway.mint(agent, "orders")
    own = orders.own("inventory")

    def uncached_own() -> object:
        verifier._verified.clear()
        return verifier.verify(own, "inventory")

    print(f"gateway_sign_us: {per_call_us(lambda: gateway.mint(agent, 'orders')):.1f} us")
    print(f"gateway_verify_us: {per_call_us(lambda: verifier.verify(token, 'orders')):.1f} us")
    print(f"service_own_assertion_us: {per_call_us(lambda: orders.own('inventory')):.2f} us")
    print(f"service_verify_cached_us: {per_call_us(lambda: verifier.verify(own, 'inventory')):.2f} us")
    print(f"service_verify_uncached_us: {per_call_us(uncached_own):.1f} us")
    print(f"assertion_bytes: {len(token)} bytes")


if __name__ == "__main__":
    main()
