from __future__ import annotations

import pytest

from omsctl import tokens
from omsctl.stack import Platform, edge_settings

pytestmark = pytest.mark.e2e


def bearer(platform: Platform, *roles: str, sub: str = "e2e-user", ttl: int = 3600, **claims: str) -> str:
    """A token signed with the running platform's development key (as `omsctl token` mints)."""
    return tokens.mint(edge_settings(platform.home), sub, list(roles or ("ops",)), ttl, **claims)


def auth_metadata(platform: Platform, *roles: str, **claims: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {bearer(platform, *roles, **claims)}"),)
