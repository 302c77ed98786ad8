from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from omsctl import tokens
from omsctl.stack import Infra, Platform, edge_settings
from services.gateway.config import DEFAULT_LIMITS
from tests.conftest import random_ref

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def platform(infra: Infra) -> Iterator[Platform]:
    """The whole platform as `make run` starts it (same code), on free ports, own database and subjects."""
    home = Path(tempfile.mkdtemp(prefix="oms-e2e-"))
    running = Platform(
        infra,
        home,
        subject_prefix=random_ref("e2e"),
        database_names={"orders": random_ref("e2e_orders_"), "gateway": random_ref("e2e_gateway_")},
        fixed_ports=False,
    )
    # a deliberately tight limit for one test role, so the limiter's 429 can be seen quickly
    limits = DEFAULT_LIMITS + ",role:tight.read=1/s:3"
    previous = os.environ.get("RATE_LIMITS")
    os.environ["RATE_LIMITS"] = limits
    try:
        running.start()
        yield running
    finally:
        if previous is None:
            os.environ.pop("RATE_LIMITS", None)
        else:
            os.environ["RATE_LIMITS"] = previous
        running.stop()
        shutil.rmtree(home, ignore_errors=True)


def bearer(platform: Platform, *roles: str, sub: str = "e2e-user", ttl: int = 3600, **claims: str) -> str:
    """A token signed with the running platform's development key (as `omsctl token` mints)."""
    return tokens.mint(edge_settings(platform.home), sub, list(roles or ("ops",)), ttl, **claims)


def auth_metadata(platform: Platform, *roles: str, **claims: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {bearer(platform, *roles, **claims)}"),)
