from __future__ import annotations

import base64

import pytest

from services.gateway.config import Settings
from services.kit.config import InvalidSetting
from tests import identity

ENV = {
    "DATABASE_URL": "postgresql://u@h:5/gateway",
    "NATS_URL": "nats://h:4222",
    "REDIS_URL": "redis://h:6379",
    "ORDERS_SERVICE_ADDR": "h:1",
    "INVENTORY_SERVICE_ADDR": "h:2",
    "ROUTING_SERVICE_ADDR": "h:3",
    "LOGISTICS_SERVICE_ADDR": "h:4",
    "AFTERSALES_SERVICE_ADDR": "h:5",
    "JWT_KEYS": f"k1:{base64.b64encode(bytes(32)).decode()}",
    "JWT_ACTIVE_KID": "k1",
    **identity.env("gateway"),
}


def test_the_upload_quota_defaults_to_two_of_the_largest_uploads_and_is_read() -> None:
    assert Settings.from_env(ENV).upload_quota_bytes == 2 * Settings.from_env(ENV).upload_max_bytes
    given = Settings.from_env({**ENV, "UPLOAD_QUOTA_BYTES_PER_PRINCIPAL": str(300 << 20)})
    assert given.upload_quota_bytes == 300 << 20


def test_an_upload_quota_below_the_largest_upload_is_refused_by_name() -> None:
    with pytest.raises(InvalidSetting, match="UPLOAD_QUOTA_BYTES_PER_PRINCIPAL"):
        Settings.from_env({**ENV, "UPLOAD_MAX_BYTES": "1000", "UPLOAD_QUOTA_BYTES_PER_PRINCIPAL": "999"})
