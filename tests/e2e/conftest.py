from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from omsctl import tokens
from omsctl.stack import Infra, Platform, edge_settings
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
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(home, ignore_errors=True)


def bearer(platform: Platform, *roles: str, sub: str = "e2e-user", ttl: int = 3600, **claims: str) -> str:
    """A token signed with the running platform's development key (as `omsctl token` mints)."""
    return tokens.mint(edge_settings(platform.home), sub, list(roles or ("ops",)), ttl, **claims)


def auth_metadata(platform: Platform, *roles: str, **claims: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {bearer(platform, *roles, **claims)}"),)
