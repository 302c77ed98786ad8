"""Identity for tests that call services directly: keys made once per test session, the verifier every
test server uses, services' own identities for their peer channels, and gateway-issued assertions for
given roles and scope (what the gateway would mint for such a caller)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from services.kit import grpc_client
from services.kit.identity import (
    ASSERTION_HEADER,
    GATEWAY,
    IdentitySettings,
    Principal,
    ServiceIdentity,
    Signer,
    TrustedKey,
    Verifier,
    generate_key,
    private_key,
    public_key_of,
    trusted_keys_json,
)

ISSUERS = (GATEWAY, "orders", "routing", "inventory", "aftersales")
KEYS = {issuer: generate_key() for issuer in ISSUERS}
# what a test client is when it names no caller: a gateway-vouched service with no roles, unscoped
ANONYMOUS_SERVICE = Principal(subject="tests", actor_type="service", roles=frozenset())


def kid(issuer: str) -> str:
    return f"test-{issuer}"


def trusted_json() -> str:
    return trusted_keys_json((kid(issuer), issuer, public_key_of(KEYS[issuer])) for issuer in ISSUERS)


def env(issuer: str) -> dict[str, str]:
    """The IDENTITY_* settings of a process named `issuer`."""
    return {
        "IDENTITY_SIGNING_KID": kid(issuer),
        "IDENTITY_SIGNING_KEY": KEYS[issuer],
        "IDENTITY_TRUSTED_KEYS": trusted_json(),
    }


def settings(issuer: str) -> IdentitySettings:
    return IdentitySettings.from_env(issuer, env(issuer))


def trusted() -> dict[str, TrustedKey]:
    return dict(settings(GATEWAY).trusted)


def verifier() -> Verifier:
    return Verifier(trusted())


def signer(issuer: str = GATEWAY) -> Signer:
    return Signer(settings(issuer))


def service_identity(issuer: str) -> ServiceIdentity:
    return ServiceIdentity(signer(issuer))


def principal(
    *roles: str,
    subject: str = "tests",
    actor_type: str = "user",
    customer: str = "",
    agent: str = "",
    channel: str = "",
    reveal: bool = False,
    provider: str = "",
) -> Principal:
    return Principal(
        subject,
        actor_type,
        frozenset(roles),
        customer_id=customer,
        agent_id=agent,
        channel=channel,
        provider=provider,
        reveal=reveal,
    )


def as_gateway(
    *roles: str,
    audience: str = "orders",
    subject: str = "tests",
    actor_type: str = "user",
    customer: str = "",
    agent: str = "",
    channel: str = "",
    reveal: bool = False,
    provider: str = "",
) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the gateway's assertion of a caller with these roles and scope."""
    who = principal(
        *roles,
        subject=subject,
        actor_type=actor_type,
        customer=customer,
        agent=agent,
        channel=channel,
        reveal=reveal,
        provider=provider,
    )
    return ((ASSERTION_HEADER, signer().mint(who, audience)),)


class Vouched:
    """A test client's `Assertions`: the gateway's, minted per call, for one fixed principal."""

    def __init__(self, who: Principal = ANONYMOUS_SERVICE) -> None:
        self.who = who
        self.signer = signer()

    def assertion(self, audience: str) -> str:
        return self.signer.mint(self.who, audience)


def client_channel(
    address: str,
    who: Principal = ANONYMOUS_SERVICE,
    deadline_seconds: float = grpc_client.DEFAULT_DEADLINE_SECONDS,
) -> grpc.aio.Channel:
    """A channel whose calls carry the gateway's assertion of `who` unless they bring their own. Its
    service config's deadline caps every call's own `timeout`."""
    return grpc_client.channel(address, deadline_seconds, identity=Vouched(who))


def forged(principal: Principal, audience: str, issuer: str = GATEWAY, ttl_seconds: int = 60) -> str:
    """An assertion signed with a key nobody trusts (but naming a trusted key id)."""
    rogue = IdentitySettings(
        issuer=issuer,
        signing_kid=kid(issuer),
        signing_key=private_key(generate_key()),
        trusted={},
        ttl_seconds=ttl_seconds,
    )
    return Signer(rogue).mint(principal, audience)


def listening_hosts(port: int) -> set[str]:
    """The local addresses the machine listens on at `port` (TCP, from /proc/net/tcp and tcp6): a
    look at what is bound, without sending anything to a non-loopback address."""
    hosts = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host order
            words = b"".join(
                struct.pack("=I", int.from_bytes(raw[i : i + 4], "big")) for i in range(0, len(raw), 4)
            )
            host = ipaddress.ip_address(socket.inet_ntop(family, words))
            mapped = getattr(host, "ipv4_mapped", None)
            hosts.add(str(mapped or host))
    return hosts


@asynccontextmanager
async def served(service_name: str, register: Callable[[grpc.aio.Server], None]) -> AsyncIterator[str]:
    """A servicer on a loopback port behind the kit's server (identity checked with the test keys);
    yields its address."""
    from services.kit.grpc_server import GrpcServer

    server = GrpcServer(
        port=0,
        verifier=verifier(),
        service_names=[service_name],
        register=register,
        host="127.0.0.1",
        grace_seconds=0.5,
    )
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop()
