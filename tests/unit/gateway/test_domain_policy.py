"""Who may call a method, and how far a scoped caller reaches: the admission decision on claims."""

from __future__ import annotations

import pytest

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.policy import POLICY, Klass, Reach, Rule, refusal, rule_for
from services.gateway.domain.principal import Principal, is_scoped, scope_of

STAFF_ONLY = Rule(frozenset({"ops", "customer"}), Reach.STAFF, Klass.READ, mutating=False)


def principal(*roles: str, **claims: str) -> Principal:
    return Principal(claims.pop("subject", "p-1"), claims.pop("kind", "user"), frozenset(roles), **claims)


@pytest.mark.parametrize(
    ("method", "who", "reason"),
    [
        ("oms.orders.v1.OrdersService/GetOrder", principal("customer", customer_id="c-1"), None),
        ("oms.orders.v1.OrdersService/GetOrder", principal("wms"), AttemptReason.ROLE_NOT_ALLOWED),
        ("oms.orders.v1.OrdersService/GetOrder", principal("customer"), AttemptReason.CUSTOMER_UNNAMED),
        # a channel claim does not name the customer a customer token is about
        (
            "oms.orders.v1.OrdersService/GetOrder",
            principal("customer", channel="TAOBAO"),
            AttemptReason.CUSTOMER_UNNAMED,
        ),
        # staff holding the customer role too are not limited to one customer's rows
        ("oms.orders.v1.OrdersService/GetOrder", principal("customer", "ops"), None),
        ("oms.gateway.v1.GatewayService/IssueToken", principal(), None),
        ("/oms.gateway.v1.GatewayService/ListAuditRecords", principal("ops"), AttemptReason.ROLE_NOT_ALLOWED),
        ("/oms.gateway.v1.GatewayService/ListAuditRecords", principal("admin"), None),
    ],
)
def test_the_gate_refuses_a_caller_for_one_reason_or_admits_it(
    method: str, who: Principal, reason: AttemptReason | None
) -> None:
    rule = rule_for(method)

    assert rule is not None and refusal(rule, who) == reason


def test_a_scoped_caller_never_reaches_a_staff_only_method_even_if_a_rule_lists_its_role() -> None:
    assert refusal(STAFF_ONLY, principal("customer", customer_id="c-1")) == AttemptReason.SCOPED_CALLER
    assert refusal(STAFF_ONLY, principal("ops")) is None


def test_a_method_missing_from_the_table_has_no_rule() -> None:
    assert rule_for("/oms.orders.v1.OrdersService/DropEverything") is None


@pytest.mark.parametrize(
    ("who", "scope"),
    [
        (principal("customer", customer_id="c-1"), ("c-1", "", "", "")),
        (principal("cs_agent", subject="agent-7"), ("", "agent-7", "", "")),
        (principal("channel", channel="TAOBAO", kind="integration"), ("", "", "TAOBAO", "")),
        (principal("payment_provider", provider="alipay", kind="integration"), ("", "", "", "alipay")),
        (principal("ops", "customer", customer_id="c-1"), ("", "", "", "")),
        (principal("finance", "cs_agent"), ("", "", "", "")),
    ],
)
def test_a_principal_reaches_its_own_rows_only_unless_it_holds_a_staff_role(
    who: Principal, scope: tuple[str, str, str, str]
) -> None:
    told = scope_of(who)

    assert (told.customer_id, told.agent_id, told.channel, told.provider) == scope
    assert is_scoped(who) == any(scope)


def test_every_public_method_is_an_anonymous_one_and_every_other_names_its_roles() -> None:
    for method, rule in POLICY.items():
        assert rule.public == (rule.reach is Reach.PUBLIC), method
        assert rule.public or rule.roles, method
