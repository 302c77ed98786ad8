"""API1 Broken Object Level Authorization: an id claim that is blank once trimmed must not widen the
row scope to "everything". Before the fix `customer_id=" "` and a cs_agent `sub=" "` passed the gateway
and orders trimmed them to "unrestricted" (500 rows from 50 buyers)."""

from __future__ import annotations

import pytest

from omsctl.stack import Platform
from tests.e2e.test_edge import call
from tests.security.claims import signed_token


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "c-blank", "roles": ["customer"], "customer_id": " "},
        {"sub": " ", "roles": ["cs_agent"]},
        {"sub": "agent-7 ", "roles": ["cs_agent"]},
    ],
    ids=["customer_id blank", "agent sub blank", "agent sub padded"],
)
async def test_a_blank_or_padded_id_claim_is_refused_not_read_as_unscoped(
    platform: Platform, claims: dict[str, object]
) -> None:
    status, _, answer = await call(platform, "GET", "/v1/orders", token=signed_token(platform, **claims))
    # a malformed credential is no credential: 401, like a bad signature (nothing says which claim)
    assert status == 401, answer
