"""Carriers' tracking pushes in their own formats: SF known by the token in its push address, Kuaidi100
by its sign; a push that proves nothing is refused, counted and never forwarded; a verified one reaches
logistics as `carrier/<carrier>` and its answer goes back to the carrier."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from sandboxes.carriers.protocols import kuaidi100 as kuaidi100_sandbox
from services.gateway.config import push_secrets
from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.tracking_pushes import (
    PushReply,
    PushSecrets,
    authentic,
    kuaidi100_form,
    kuaidi100_sign,
    push_targets,
)
from services.gateway.handlers.tracking_pushes import METHOD, TrackingPushes
from services.kit.config import InvalidSetting
from services.kit.errors import InvalidArgument, Unauthenticated, Unavailable
from tests.unit.gateway.fakes import FakeAudit, caller

TOKEN = "t" * 43
OLD_TOKEN = "o" * 43
SALT = "oms-salt-0123456789"
SECRETS = PushSecrets((TOKEN, OLD_TOKEN), (SALT,))
SF_BODY = json.dumps(
    {
        "Body": {
            "WaybillRoute": [
                {
                    "mailno": "SF1234567890123",
                    "orderid": "s-1",
                    "opCode": "50",
                    "acceptTime": "2026-01-01 10:00:00",
                }
            ]
        }
    }
).encode()
PARAM = '{"status":"polling","lastResult":{"nu":"ZT100"}}'
SENT_FROM = caller("", kind="anonymous")


def kuaidi100_body(param: str = PARAM, sign: str | None = None, salt: str = SALT) -> bytes:
    return urlencode({"param": param, "sign": kuaidi100_sign(param, salt) if sign is None else sign}).encode()


def test_the_kuaidi100_sign_is_upper_md5_of_param_and_salt_as_the_sandbox_signs_it() -> None:
    assert kuaidi100_sign(PARAM, SALT) == "166E359AB58434C1A75388C580F01B50"
    assert kuaidi100_sign(PARAM, SALT) == kuaidi100_sandbox.push_sign(PARAM, SALT)
    chinese = '{"message":"快件已签收"}'
    assert kuaidi100_sign(chinese, SALT) == kuaidi100_sandbox.push_sign(chinese, SALT)


@pytest.mark.parametrize(
    ("carrier", "token", "body", "expected"),
    [
        ("sf", TOKEN, SF_BODY, True),
        ("sf", OLD_TOKEN, SF_BODY, True),  # the previous token, during a rotation
        ("sf", "", SF_BODY, False),
        ("sf", TOKEN[:-1], SF_BODY, False),
        ("sf", TOKEN + "x", SF_BODY, False),
        ("kuaidi100", "", kuaidi100_body(), True),
        ("kuaidi100", "", kuaidi100_body(sign=kuaidi100_sign(PARAM, SALT).lower()), True),
        ("kuaidi100", TOKEN, kuaidi100_body(salt="another-salt-000000"), False),
        ("kuaidi100", "", urlencode({"param": PARAM}).encode(), False),
        ("kuaidi100", "", b"\xff\xfe", False),
        ("kuaidi100", "", SF_BODY, False),
        # the same param twice: what is verified must be what logistics reads
        ("kuaidi100", "", kuaidi100_body() + b"&param=%7B%7D", False),
        ("zto", TOKEN, SF_BODY, False),
    ],
)
def test_a_push_is_authentic_only_with_its_carriers_proof(
    carrier: str, token: str, body: bytes, expected: bool
) -> None:
    assert authentic(carrier, token, body, SECRETS) is expected


def test_no_token_or_salt_configured_refuses_every_push() -> None:
    assert not authentic("sf", "", SF_BODY, PushSecrets())
    assert not authentic("kuaidi100", "", kuaidi100_body(), PushSecrets())


def test_a_form_names_its_param_and_sign_once() -> None:
    assert kuaidi100_form(kuaidi100_body()) == (PARAM, kuaidi100_sign(PARAM, SALT))
    assert kuaidi100_form(b"param=a&param=b&sign=c") is None


def test_the_audit_targets_are_the_waybills_a_push_names() -> None:
    assert push_targets("sf", SF_BODY) == ["SF1234567890123", "s-1"]
    assert push_targets("kuaidi100", kuaidi100_body()) == ["ZT100"]
    assert push_targets("sf", b"not json") == []
    assert push_targets("kuaidi100", kuaidi100_body(param="[]")) == []


def test_push_settings_need_long_url_safe_tokens_and_salts() -> None:
    given = push_secrets({"SF_PUSH_TOKEN": TOKEN, "KUAIDI100_PUSH_SALT": SALT})
    assert given == PushSecrets((TOKEN,), (SALT,))
    assert push_secrets({}) == PushSecrets()
    with pytest.raises(InvalidSetting, match="SF_PUSH_TOKEN"):
        push_secrets({"SF_PUSH_TOKEN": "short"})
    with pytest.raises(InvalidSetting, match="SF_PUSH_TOKEN"):
        push_secrets({"SF_PUSH_TOKEN": "a+b/" * 10})
    with pytest.raises(InvalidSetting, match="KUAIDI100_PUSH_SALT"):
        push_secrets({"KUAIDI100_PUSH_SALT_PREVIOUS": "short"})


class FakeLogistics:
    def __init__(self, failure: UpstreamFailure | None = None, quarantine_id: str = "") -> None:
        self.failure = failure
        self.quarantine_id = quarantine_id
        self.reported: list[tuple[str, frozenset[str], str, str, bytes]] = []

    async def report_tracking(
        self, caller: object, carrier: str, content_type: str, body: bytes
    ) -> PushReply:
        principal = caller.principal  # type: ignore[attr-defined]
        self.reported.append((principal.subject, principal.roles, carrier, content_type, body))
        if self.failure is not None:
            raise self.failure
        return PushReply(
            "application/json", b'{"return_code":"0000"}', 0 if self.quarantine_id else 1, self.quarantine_id
        )


async def test_a_verified_sf_push_reaches_logistics_as_the_carrier_and_its_answer_goes_back() -> None:
    logistics, audit = FakeLogistics(), FakeAudit()
    handler = TrackingPushes(SECRETS, logistics, audit)

    reply = await handler.receive(" SF ", TOKEN, "application/json;charset=UTF-8", SF_BODY, SENT_FROM)

    assert reply.body == b'{"return_code":"0000"}'
    assert logistics.reported == [
        ("carrier/sf", frozenset({"carrier"}), "sf", "application/json;charset=UTF-8", SF_BODY)
    ]
    assert audit.records == [
        ("carrier/sf", METHOD, "OK", ["SF1234567890123", "s-1"], "1 new tracking node(s)")
    ]
    assert audit.attempts == []


async def test_a_quarantined_push_is_audited_with_its_quarantine_id() -> None:
    audit = FakeAudit()
    handler = TrackingPushes(SECRETS, FakeLogistics(quarantine_id="q-1"), audit)
    await handler.receive("kuaidi100", "", "application/x-www-form-urlencoded", kuaidi100_body(), SENT_FROM)
    assert audit.records == [("carrier/kuaidi100", METHOD, "OK", ["ZT100", "q-1"], "quarantined as q-1")]


@pytest.mark.parametrize(
    ("carrier", "token", "body"),
    [("sf", "", SF_BODY), ("sf", "wrong" * 9, SF_BODY), ("kuaidi100", TOKEN, kuaidi100_body(sign="0" * 32))],
)
async def test_a_push_without_its_proof_is_refused_counted_and_goes_nowhere(
    carrier: str, token: str, body: bytes
) -> None:
    logistics, audit = FakeLogistics(), FakeAudit()
    handler = TrackingPushes(SECRETS, logistics, audit)

    with pytest.raises(Unauthenticated):
        await handler.receive(carrier, token, "application/json", body, SENT_FROM)

    assert logistics.reported == [] and audit.records == []
    assert audit.attempts == [("", METHOD, "UNAUTHENTICATED", AttemptReason.PUSH_SIGNATURE)]


async def test_an_unknown_carrier_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="sf, kuaidi100"):
        await TrackingPushes(SECRETS, FakeLogistics(), FakeAudit()).receive(
            "zto", TOKEN, "", SF_BODY, SENT_FROM
        )


async def test_logistics_unavailable_asks_the_carrier_to_push_again_and_is_audited() -> None:
    audit = FakeAudit()
    handler = TrackingPushes(SECRETS, FakeLogistics(UpstreamFailure("UNAVAILABLE", "db down")), audit)
    with pytest.raises(Unavailable, match="push again"):
        await handler.receive("sf", TOKEN, "application/json", SF_BODY, SENT_FROM)
    assert [record[2] for record in audit.records] == ["UNAVAILABLE"]
