"""The caller's address is the one Envoy set, never a header the caller wrote."""

from __future__ import annotations

from services.gateway.gate import CLIENT_ADDRESS_HEADER, client_address


def test_the_address_envoy_set_wins_over_x_forwarded_for() -> None:
    metadata = {"x-forwarded-for": "203.0.113.9, 10.0.0.1", CLIENT_ADDRESS_HEADER: "198.51.100.4"}

    assert client_address(metadata, "ipv4:10.0.0.1:5555") == "198.51.100.4"


def test_without_envoys_header_the_peer_is_the_caller_whatever_x_forwarded_for_says() -> None:
    assert client_address({"x-forwarded-for": "203.0.113.9"}, "ipv4:127.0.0.1:5555") == "127.0.0.1"
    assert client_address({"x-envoy-external-address": "203.0.113.9"}, "ipv6:[::1]:5555") == "::1"
