from __future__ import annotations

import pytest

from services.inventory.domain.model import (
    Line,
    Reservation,
    ReservationStatus,
    allotment_room,
    bucket_units,
    check_buckets,
    first_bucket,
    refill_size,
    split_evenly,
)
from services.kit.errors import InvalidArgument


def test_orders_spread_evenly_over_the_buckets_and_a_repeat_starts_where_it_did() -> None:
    counts = [0] * 8
    for n in range(8_000):
        counts[first_bucket(f"order-{n}", 8)] += 1
    assert min(counts) > 850 and max(counts) < 1150
    assert first_bucket("order-7", 8) == first_bucket("order-7", 8)


def test_a_dry_bucket_takes_its_share_of_the_room_at_least_the_line_never_more_than_the_room() -> None:
    assert refill_size(room=800, buckets=8, quantity=1) == 100
    assert refill_size(room=801, buckets=8, quantity=1) == 101
    assert refill_size(room=10, buckets=8, quantity=5) == 5
    assert refill_size(room=3, buckets=8, quantity=3) == 3
    assert refill_size(room=2, buckets=8, quantity=3) == 0


def test_a_row_allots_what_a_reservation_could_take_but_never_its_safety_stock() -> None:
    assert (
        allotment_room(on_hand=100, reserved=10, safety_level=0, sellable=True, cap_basis_points=9_500) == 85
    )
    assert (
        allotment_room(on_hand=100, reserved=10, safety_level=20, sellable=True, cap_basis_points=9_500) == 70
    )
    assert (
        allotment_room(on_hand=100, reserved=90, safety_level=20, sellable=True, cap_basis_points=9_500) == 0
    )
    assert (
        allotment_room(on_hand=100, reserved=0, safety_level=0, sellable=False, cap_basis_points=9_500) == 0
    )


def test_units_are_split_evenly_the_first_buckets_taking_the_remainder() -> None:
    assert split_evenly(38, 4) == [10, 10, 9, 9]
    assert split_evenly(3, 8) == [1, 1, 1, 0, 0, 0, 0, 0]
    assert sum(split_evenly(1_000_003, 64)) == 1_000_003


def test_one_bucket_is_no_split_and_more_than_64_or_fewer_than_0_are_refused() -> None:
    assert check_buckets(0) == check_buckets(1) == 0
    assert check_buckets(64) == 64
    for count in (-1, 65):
        with pytest.raises(InvalidArgument) as refused:
            check_buckets(count)
        assert refused.value.field == "buckets"


def test_units_taken_from_buckets_are_summed_per_bucket_in_lock_order() -> None:
    def held(
        reservation_id: str, lines: tuple[Line, ...], buckets: dict[tuple[str, str], int]
    ) -> Reservation:
        return Reservation(
            reservation_id,
            reservation_id,
            ReservationStatus.ACTIVE,
            None,
            None,
            lines,
            buckets=buckets,  # type: ignore[arg-type]
        )

    reservations = [
        held("a", (Line("TEA", "SH", 2), Line("CUP", "SH", 1)), {("TEA", "SH"): 3}),
        held("b", (Line("TEA", "SH", 4),), {("TEA", "SH"): 3}),
        held("c", (Line("TEA", "SH", 1),), {("TEA", "SH"): 0}),
    ]
    assert [(u.bucket, u.quantity) for u in bucket_units(reservations)] == [(0, 1), (3, 6)]
