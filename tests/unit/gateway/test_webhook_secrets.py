from __future__ import annotations

import base64
import json

import pytest

from services.gateway.config import _webhook_secrets
from services.kit.config import InvalidSetting

SECRET = base64.b64encode(b"s" * 32).decode()


def test_each_webhook_secret_is_bound_to_its_kind_and_sender() -> None:
    secrets = _webhook_secrets(
        {"WEBHOOK_SECRETS": json.dumps({"payment/WeChat_Pay": SECRET, "carrier/sf": SECRET})}
    )
    assert set(secrets) == {"payment/wechat_pay", "carrier/sf"}


@pytest.mark.parametrize("key", ["sf", "refund/sf", "payment/", "/sf"])
def test_a_secret_without_a_known_kind_and_a_sender_stops_the_gateway_naming_it(key: str) -> None:
    with pytest.raises(InvalidSetting, match="must name a kind and a sender"):
        _webhook_secrets({"WEBHOOK_SECRETS": json.dumps({key: SECRET})})
