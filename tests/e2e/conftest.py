from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from omsctl.stack import Infra, Platform
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
        database_names={"orders": random_ref("e2e_orders_")},
        fixed_ports=False,
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(home, ignore_errors=True)
