"""The retention touch, an example of a configurable rule: a ticket opened for a size-related reason
suggests a coupon and a size hint (published as RetentionSuggested; sending it is someone else's job).

The size hint reads the customer's note, simply: it says "too small" / "too tight" (偏小, 太小, 小了,
紧) → "consider one size up"; "too big" / "too large" / "too loose" (偏大, 太大, 大了, 松) →
"consider one size down"; both or neither → "check the size chart". Matching is by substring,
case-insensitive, nothing cleverer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.aftersales.domain.reasons import Reason
from services.kit.errors import InvalidArgument

TICKET_ID = "{ticket_id}"
# coupon codes go to other systems: keep them short and plain
MAX_CODE = 64

SMALLER = ("too small", "too tight", "偏小", "太小", "小了", "紧")
BIGGER = ("too big", "too large", "too loose", "偏大", "太大", "大了", "松")
SIZE_UP = "consider one size up"
SIZE_DOWN = "consider one size down"
SIZE_CHART = "check the size chart"


@dataclass(frozen=True)
class RetentionRule:
    name: str = "size_fit_coupon"
    reasons: frozenset[Reason] = field(default_factory=lambda: frozenset({Reason.SIZE_FIT}))
    coupon_amount_minor: int = 1000
    coupon_min_spend_minor: int = 0
    coupon_valid_days: int = 30
    # the coupon's code; {ticket_id} is replaced by the ticket's id
    code_template: str = "FIT-{ticket_id}"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidArgument("retention.name", "is required")
        if not self.reasons:
            raise InvalidArgument("retention.reasons", "name at least one reason")
        if self.coupon_amount_minor < 1:
            raise InvalidArgument("retention.coupon_amount_minor", "must be at least 1")
        if self.coupon_min_spend_minor < 0:
            raise InvalidArgument("retention.coupon_min_spend_minor", "must not be negative")
        if self.coupon_valid_days < 1:
            raise InvalidArgument("retention.coupon_valid_days", "must be at least 1")
        if TICKET_ID not in self.code_template:
            raise InvalidArgument("retention.code_template", "must contain {ticket_id}")


DEFAULT_RETENTION = RetentionRule()


@dataclass(frozen=True)
class Suggestion:
    rule: str
    coupon_code: str
    coupon_amount_minor: int
    coupon_min_spend_minor: int
    valid_until: datetime
    size_hint: str


def size_hint(note: str) -> str:
    text = note.casefold()
    smaller = any(word in text for word in SMALLER)
    bigger = any(word in text for word in BIGGER)
    if smaller and not bigger:
        return SIZE_UP
    if bigger and not smaller:
        return SIZE_DOWN
    return SIZE_CHART


def suggest(
    rule: RetentionRule, ticket_id: str, reason: Reason, note: str, now: datetime
) -> Suggestion | None:
    """The suggestion for a ticket of this reason, or None when the rule is not about it."""
    if reason not in rule.reasons:
        return None
    code = rule.code_template.replace(TICKET_ID, ticket_id)[:MAX_CODE]
    return Suggestion(
        rule.name,
        code,
        rule.coupon_amount_minor,
        rule.coupon_min_spend_minor,
        now + timedelta(days=rule.coupon_valid_days),
        size_hint(note),
    )
