"""The anomaly rules on an injected clock: no first scan within 48 h of the scan-out, no update for
48 h, the last mile elsewhere than the delivery address, repeated returns."""

from __future__ import annotations

from datetime import timedelta

from services.logistics.domain.anomalies import (
    AnomalyRules,
    Returns,
    destination_mismatch,
    no_first_scan,
    no_update,
    repeated_returns,
    same_area,
)
from services.logistics.domain.model import Node, Place, Source
from tests.unit.logistics.builders import T0, scan, shipped

RULES = AnomalyRules()


def test_no_first_scan_is_seen_only_after_48_hours_and_names_rule_expected_seen_and_source() -> None:
    found = shipped(at=T0)
    assert no_first_scan(found, T0 + timedelta(hours=47, minutes=59), RULES, Source.POLL) is None
    anomaly = no_first_scan(found, T0 + timedelta(hours=48), RULES, Source.POLL)
    assert anomaly is not None
    alert = anomaly.alert()
    assert alert.kind == "logistics_no_first_scan"
    assert "rule no_first_scan" in alert.message
    assert "expected a first pickup scan by 2026-03-03 08:00 UTC" in alert.message
    assert "seen no carrier scan" in alert.message and alert.message.endswith("from a poll")
    assert (alert.order_id, alert.customer_id, alert.channel) == ("o-s-1", "c-1", "TAOBAO")
    assert alert.roles == ("warehouse_supervisor", "cs_lead"), "addressed to who acts on it"


def test_any_scan_counts_as_the_first_one_and_an_unshipped_parcel_has_none_due() -> None:
    found = shipped(at=T0)
    found.track(scan(Node.IN_TRANSIT, T0 + timedelta(hours=1)))
    assert no_first_scan(found, T0 + timedelta(hours=72), RULES, Source.POLL) is None
    waiting = shipped(at=T0)
    waiting.scanned_out_at = None
    assert no_first_scan(waiting, T0 + timedelta(hours=72), RULES, Source.POLL) is None


def test_the_threshold_is_a_setting() -> None:
    found = shipped(at=T0)
    quick = AnomalyRules(first_scan_within=timedelta(hours=6))
    assert no_first_scan(found, T0 + timedelta(hours=6), quick, Source.POLL) is not None


def test_no_update_for_48_hours_after_the_last_scan() -> None:
    found = shipped(at=T0)
    found.track(scan(Node.IN_TRANSIT, T0 + timedelta(hours=2)))
    assert no_update(found, T0 + timedelta(hours=49), RULES, Source.POLL) is None
    anomaly = no_update(found, T0 + timedelta(hours=50), RULES, Source.POLL)
    assert (
        anomaly is not None and "nothing since in_transit at 2026-03-01 10:00 UTC" in anomaly.alert().message
    )


def test_a_delivered_parcel_is_never_stale() -> None:
    found = shipped(at=T0)
    found.track(scan(Node.DELIVERED, T0 + timedelta(hours=2)))
    assert no_update(found, T0 + timedelta(days=30), RULES, Source.POLL) is None


def test_the_last_mile_in_another_city_is_a_mismatch_and_the_same_city_spelled_otherwise_is_not() -> None:
    found = shipped()
    elsewhere = scan(Node.OUT_FOR_DELIVERY, T0, area="深圳市南山区", source=Source.PUSH)
    anomaly = destination_mismatch(found, elsewhere)
    assert anomaly is not None
    assert "expected out_for_delivery in 上海市 (the delivery address)" in anomaly.alert().message
    assert anomaly.alert().message.endswith("from a push")
    assert destination_mismatch(found, scan(Node.DELIVERED, T0, area="上海")) is None
    assert destination_mismatch(found, scan(Node.IN_TRANSIT, T0, area="深圳")) is None


def test_same_area_reads_names_without_their_suffixes() -> None:
    assert same_area("广州", Place(province="广东省", city="广州市"))
    assert same_area("新疆乌鲁木齐", Place(province="新疆维吾尔自治区", city=""))
    assert not same_area("北京", Place(province="广东省", city="广州市"))
    assert same_area("", Place(city="广州市"))


def test_repeated_returns_for_a_customer_or_an_address_reach_the_threshold() -> None:
    found = shipped()
    assert repeated_returns(found, Returns(2, 2, "h"), RULES, Source.PUSH) is None
    by_customer = repeated_returns(found, Returns(3, 1, "h"), RULES, Source.PUSH)
    assert by_customer is not None and by_customer.key == "customer:c-1"
    assert "seen 3 for the customer c-1" in by_customer.alert().message
    by_address = repeated_returns(found, Returns(0, 4, "h"), RULES, Source.POLL)
    assert by_address is not None and by_address.key == "address:h"
