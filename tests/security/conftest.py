"""The security suite: probes through Envoy against the whole platform (the session's `platform`, shared
with tests/e2e), one module per OWASP API Security Top 10 (2023) category, e.g. `test_api1_bola.py`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
