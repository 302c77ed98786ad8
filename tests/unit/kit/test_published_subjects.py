from __future__ import annotations

import pytest

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.orders.v1 import events_pb2 as orders_pb
from services.aftersales import subjects as aftersales_subjects
from services.inventory import subjects as inventory_subjects
from services.kit import bus
from services.logistics import subjects as logistics_subjects
from services.orders import subjects as orders_subjects
from services.routing import subjects as routing_subjects

TABLE = {"orders.created": "oms.orders.v1.OrderCreated", "alerts.raised": "oms.alerts.v1.AlertRaised"}


@bus.publishes(TABLE)
def encode(subject: str, message: object) -> tuple[str, object] | None:
    return None if message is None else (subject, message)


def test_an_encoder_publishes_what_its_table_declares_and_nothing_else() -> None:
    created = orders_pb.OrderCreated(order_id="o-1")
    assert encode("orders.created", created) == ("orders.created", created)
    assert encode("orders.created", None) is None
    with pytest.raises(ValueError, match=r"orders\.paid .* says nothing"):
        encode("orders.paid", orders_pb.OrderPaid())
    with pytest.raises(
        ValueError, match=r"oms\.alerts\.v1\.AlertRaised, .* says oms\.orders\.v1\.OrderCreated"
    ):
        encode("orders.created", alerts_pb.AlertRaised())


@pytest.mark.parametrize(
    ("domain", "table"),
    [
        ("orders", orders_subjects.PUBLISHED),
        ("inventory", inventory_subjects.PUBLISHED),
        ("routing", routing_subjects.PUBLISHED),
        ("logistics", logistics_subjects.PUBLISHED),
        ("aftersales", aftersales_subjects.PUBLISHED),
    ],
)
def test_a_service_publishes_on_its_own_domain_and_alerts_only(domain: str, table: dict[str, str]) -> None:
    for subject, message in table.items():
        assert bus.domain_of(subject) in (domain, "alerts"), subject
        assert message.split(".")[1] == bus.domain_of(subject), f"{subject} carries {message}"
