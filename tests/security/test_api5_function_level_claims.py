"""API5 Broken Function Level Authorization: roles are checked in one form and used in the same one.
Before the fix `ADMIN`, `x,admin` and `" supervisor"` unmasked personal data (masking folded case and
trimmed, the policy did not) and a user token claiming the `service` role was accepted unscoped."""

from __future__ import annotations

import pytest

from omsctl.stack import Platform
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.security.claims import signed_token


# each beside `risk`, which may list orders: before the fix the policy let the call through on `risk`
# and masking, folding case and trimming, read the other as a role that sees personal data
@pytest.mark.parametrize("odd", ["ADMIN", "x,admin", " supervisor", "Admin"])
async def test_a_role_not_spelled_exactly_as_a_known_role_is_refused(platform: Platform, odd: str) -> None:
    token = signed_token(platform, sub="probe-roles", roles=["risk", odd])
    status, _, answer = await call(platform, "GET", "/v1/orders", token=token)
    assert status == 401, answer


async def test_a_user_token_claiming_the_service_role_is_refused(platform: Platform) -> None:
    for kind in ({}, {"kind": "user"}):
        token = signed_token(platform, sub="probe-service", roles=["service"], **kind)
        status, _, answer = await call(platform, "GET", "/v1/orders", token=token)
        assert status == 401, answer


async def test_a_service_account_token_keeps_the_service_role(platform: Platform) -> None:
    # omsctl (and the e2e helpers) mint role service as kind service, as the token endpoint does
    status, _, answer = await call(
        platform, "GET", "/v1/orders", token=bearer(platform, "service", sub="svc-e2e")
    )
    assert status == 200, answer
