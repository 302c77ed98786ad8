"""API8 Security Misconfiguration: CORS must not reflect any origin. Before the hardening issue Envoy
echoed every `Origin`, `null` included, with credential headers allowed, so any page a signed-in user
visited could call the API with their token. Origins are now a setting (CORS_ALLOWED_ORIGINS; a local
run allows only localhost): this checks the running platform's edge, not the template."""

from __future__ import annotations

import pytest

from omsctl.stack import Platform
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call

PREFLIGHT = {"access-control-request-method": "GET", "access-control-request-headers": "authorization"}


@pytest.mark.parametrize("origin", ["null", "https://evil.example.net", "http://localhost.evil.example.net"])
async def test_an_unlisted_origin_gets_no_cors_grant_on_a_preflight_or_a_call(
    platform: Platform, origin: str
) -> None:
    _, preflight, _ = await call(platform, "OPTIONS", "/v1/orders", origin=origin, **PREFLIGHT)
    assert "access-control-allow-origin" not in preflight, preflight
    assert "access-control-allow-credentials" not in preflight, preflight
    status, answered, _ = await call(
        platform, "GET", "/v1/orders", token=bearer(platform, "ops"), origin=origin
    )
    assert status == 200
    assert "access-control-allow-origin" not in answered, answered


async def test_the_local_console_origin_is_granted(platform: Platform) -> None:
    _, preflight, _ = await call(
        platform, "OPTIONS", "/v1/orders", origin="http://localhost:5173", **PREFLIGHT
    )
    assert preflight.get("access-control-allow-origin") == "http://localhost:5173", preflight
