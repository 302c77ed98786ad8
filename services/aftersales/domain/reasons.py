"""Why a customer asks for after-sales, and who bears it: the merchant (its fault: the shipping is
refunded too) or the customer (their choice: the shipping stays paid).

The default table below is a policy object, so an operator can move a reason from one side to the
other (`policy_from_document`) without touching the rule that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.kit.errors import InvalidArgument


class Reason(StrEnum):
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    QUALITY_ISSUE = "quality_issue"
    MISSING_PARTS = "missing_parts"
    LATE_DELIVERY = "late_delivery"
    CHANGED_MIND = "changed_mind"
    SIZE_FIT = "size_fit"


class Responsibility(StrEnum):
    MERCHANT = "merchant"
    CUSTOMER = "customer"


DEFAULT_RESPONSIBILITY: Mapping[Reason, Responsibility] = {
    Reason.DAMAGED: Responsibility.MERCHANT,
    Reason.WRONG_ITEM: Responsibility.MERCHANT,
    Reason.NOT_AS_DESCRIBED: Responsibility.MERCHANT,
    Reason.QUALITY_ISSUE: Responsibility.MERCHANT,
    Reason.MISSING_PARTS: Responsibility.MERCHANT,
    Reason.LATE_DELIVERY: Responsibility.MERCHANT,
    Reason.CHANGED_MIND: Responsibility.CUSTOMER,
    Reason.SIZE_FIT: Responsibility.CUSTOMER,
}


@dataclass(frozen=True)
class RefundPolicy:
    """Who bears each reason; the shipping of the refunded units is refunded when the merchant does."""

    responsibility: Mapping[Reason, Responsibility] = field(
        default_factory=lambda: dict(DEFAULT_RESPONSIBILITY)
    )

    def __post_init__(self) -> None:
        missing = [reason.value for reason in Reason if reason not in self.responsibility]
        if missing:
            raise InvalidArgument("refund_policy", f"says nothing about {', '.join(missing)}")

    def bears(self, reason: Reason) -> Responsibility:
        return self.responsibility[reason]

    def refunds_shipping(self, reason: Reason) -> bool:
        return self.bears(reason) is Responsibility.MERCHANT


DEFAULT_POLICY = RefundPolicy()


def parse_reason(value: Any, where: str = "reason") -> Reason:
    try:
        return Reason(value)
    except ValueError:
        raise InvalidArgument(where, f"must be one of {', '.join(r.value for r in Reason)}") from None


def policy_from_document(raw: Any, where: str = "refund_policy") -> RefundPolicy:
    """`{"size_fit": "merchant", …}`: the reasons named move to that side; the others keep the default."""
    if not isinstance(raw, dict):
        raise InvalidArgument(where, "must be an object of reason → merchant | customer")
    table = dict(DEFAULT_RESPONSIBILITY)
    for key, value in raw.items():
        reason = parse_reason(key, f"{where}.{key}")
        try:
            table[reason] = Responsibility(value)
        except ValueError:
            raise InvalidArgument(f"{where}.{key}", "must be merchant or customer") from None
    return RefundPolicy(table)
