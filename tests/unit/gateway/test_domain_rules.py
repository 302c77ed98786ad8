"""The gateway's pure rules beside the policy: webhooks' signatures and mapping, uploads, alert repeats."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from services.gateway.domain import alerts, uploads, webhooks
from services.gateway.domain.uploads import Target, UploadError, UploadLimits, UploadProblem, UploadState

CHANNELS = frozenset({"CHANNEL_UNSPECIFIED", "CHANNEL_TAOBAO", "CHANNEL_JD"})
SECRET = b"s" * 32
NOW = 1_700_000_000


def signed(body: bytes, at: int = NOW, secret: bytes = SECRET) -> str:
    return hmac.new(secret, str(at).encode() + b"\n" + body, hashlib.sha256).hexdigest()


def test_a_signature_holds_for_its_body_and_secret_within_the_window_only() -> None:
    body = b'{"a": 1}'

    assert webhooks.signed(SECRET, str(NOW), signed(body).upper() + " ", body, NOW + 300, 300)
    assert not webhooks.signed(SECRET, str(NOW), signed(body), body + b" ", NOW, 300)
    assert not webhooks.signed(SECRET, str(NOW), signed(body), body, NOW + 301, 300)
    assert not webhooks.signed(None, str(NOW), signed(body), body, NOW, 300)
    assert not webhooks.signed(SECRET, f"+{NOW}", signed(body), body, NOW, 300)


def test_an_alipay_amount_in_yuan_becomes_fen_and_one_that_is_no_number_is_refused() -> None:
    body = {
        "trade_no": "T1",
        "out_trade_no": "o-1",
        "trade_status": "TRADE_FINISHED",
        "total_amount": "0.10",
        "gmt_payment": "2026-11-22T10:00:00+08:00",
    }
    report = webhooks.payment_report("alipay", body)

    assert (report.amount_minor, report.currency_code, report.status) == (
        10,
        "CNY",
        webhooks.PaymentStatus.SUCCESS,
    )
    assert report.paid_at == datetime(2026, 11, 22, 2, tzinfo=UTC)
    with pytest.raises(webhooks.WebhookError) as refused:
        webhooks.payment_report("alipay", {**body, "total_amount": "12,30"})
    assert refused.value.field == "body.total_amount"


def test_a_time_without_an_offset_is_refused_not_read_as_local_time() -> None:
    with pytest.raises(webhooks.WebhookError, match="time zone"):
        webhooks.carrier_report(
            "sf", {"waybill_no": "SF1", "node": "x", "time": "2026-11-22T10:00:00", "order_id": "o"}, CHANNELS
        )


def test_a_carrier_push_names_its_order_by_id_or_by_a_known_channel() -> None:
    by_id = webhooks.carrier_report(
        "sf",
        {"waybill_no": "SF1", "node": "signed", "time": "2026-11-22T10:00:00Z", "order_id": "o-1"},
        CHANNELS,
    )
    by_channel = webhooks.carrier_report(
        "sf",
        {
            "waybill_no": "SF1",
            "node": "signed",
            "time": "2026-11-22T10:00:00Z",
            "channel": "jd",
            "channel_order_id": "J1",
        },
        CHANNELS,
    )

    assert (by_id.order_id, by_id.node, by_id.channel) == ("o-1", "SIGNED", "")
    assert (by_channel.channel, by_channel.channel_order_id) == ("CHANNEL_JD", "J1")
    with pytest.raises(webhooks.WebhookError, match="not a sales channel"):
        webhooks.carrier_report(
            "sf",
            {"waybill_no": "SF1", "node": "n", "time": "2026-11-22T10:00:00Z", "channel": "ebay"},
            CHANNELS,
        )


def test_only_a_known_channel_may_send_channel_webhooks() -> None:
    assert webhooks.sales_channel("taobao", CHANNELS) == "CHANNEL_TAOBAO"
    for sender in ("ebay", "unspecified"):
        with pytest.raises(webhooks.WebhookError) as refused:
            webhooks.sales_channel(sender, CHANNELS)
        assert refused.value.field == "sender"


def state(total_bytes: int = 10, chunk_bytes: int = 4, received: frozenset[int] = frozenset()) -> UploadState:
    return UploadState(
        "u-1",
        "ops-1",
        Target.ORDERS_BATCH,
        total_bytes,
        "0" * 64,
        chunk_bytes,
        3,
        received,
        "open",
        0.0,
        60.0,
    )


def test_every_chunk_is_full_but_the_last_which_holds_the_rest() -> None:
    assert [uploads.chunk_size(state(), index) for index in range(3)] == [4, 4, 2]
    uploads.check_chunk(state(), 2, 2, 59.0)
    with pytest.raises(UploadError) as short:
        uploads.check_chunk(state(), 1, 2, 59.0)
    with pytest.raises(UploadError) as late:
        uploads.check_chunk(state(), 0, 4, 60.0)
    assert (short.value.field, short.value.code) == ("data", UploadProblem.INVALID)
    assert late.value.code == UploadProblem.NOT_FOUND


@pytest.mark.parametrize(
    ("args", "field", "code"),
    [
        (("", 10, "0" * 64, 4, None), "target", UploadProblem.INVALID),
        ((Target.ORDER, 0, "0" * 64, 4, None), "total_bytes", UploadProblem.INVALID),
        ((Target.ORDER, 101, "0" * 64, 4, None), "total_bytes", UploadProblem.RESOURCE_EXHAUSTED),
        ((Target.ORDER, 10, "0" * 63, 4, None), "sha256", UploadProblem.INVALID),
        ((Target.ORDER, 100, "0" * 64, 1, None), "chunk_bytes", UploadProblem.INVALID),
        ((Target.ORDER, 10, "0" * 64, 4, "no spaces"), "upload_id", UploadProblem.INVALID),
    ],
)
def test_an_upload_declares_what_the_limits_allow(args: tuple, field: str, code: UploadProblem) -> None:  # type: ignore[type-arg]
    with pytest.raises(UploadError) as refused:
        UploadLimits(max_total_bytes=100, max_chunk_bytes=8, max_chunks=50).check(*args)

    assert (refused.value.field, refused.value.code) == (field, code)


def test_an_upload_is_assembled_only_whole_and_only_once() -> None:
    uploads.check_assemblable(state(received=frozenset({0, 1, 2})))
    with pytest.raises(UploadError, match="1 of 3 chunks are missing"):
        uploads.check_assemblable(state(received=frozenset({0, 2})))


@pytest.mark.parametrize(
    ("target", "roles", "allowed"),
    [
        (Target.ORDERS_BATCH, {"channel"}, True),
        (Target.ORDERS_BATCH, {"finance"}, False),
        (Target.PAYMENT_STATEMENT, {"finance"}, True),
        (Target.PAYMENT_STATEMENT, {"channel", "service"}, False),
    ],
)
def test_an_upload_carries_no_rights_its_uploader_lacks(
    target: Target, roles: set[str], allowed: bool
) -> None:
    assert uploads.may_hand_over(target, frozenset(roles)) is allowed


def test_an_alert_repeats_by_its_dedupe_key_else_its_event_id_and_with_neither_is_always_sent() -> None:
    assert alerts.dedupe_key("stuck:o-1", "ev-1") == "stuck:o-1"
    assert alerts.dedupe_key("", "ev-1") == "ev-1"
    assert alerts.dedupe_key("", "") == ""
    assert alerts.dedupe_slot("oms:alert", "wecom", "stuck:o-1") == "oms:alert:dedupe:wecom:stuck:o-1"


def test_a_watcher_sees_alerts_at_or_above_its_severity_and_long_messages_are_clipped() -> None:
    assert alerts.watched(3, 3) and not alerts.watched(2, 3)
    clipped = alerts.clip("x" * 2000)
    assert len(clipped) == alerts.MAX_MESSAGE_CHARS and clipped.endswith("…")
