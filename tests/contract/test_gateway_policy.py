"""Every public RPC has exactly one policy entry, and nothing in the policy is stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pool

from services.gateway.domain.policy import POLICY, SCOPED_ROLES, Reach
from services.gateway.routes import EDGE_SERVICES, public_proto_modules
from tests.contract.test_contracts import descriptor_set


def test_every_public_rpc_has_a_policy_and_every_policy_names_a_real_rpc() -> None:
    public_proto_modules()
    methods = {
        f"{file.package}.{service.name}/{method.name}"
        for file in descriptor_set().file
        for service in file.service
        if f"{file.package}.{service.name}" in EDGE_SERVICES
        for method in service.method
    }
    assert methods == set(POLICY)


def test_only_token_exchange_sign_in_signed_webhooks_and_the_consoles_files_are_public() -> None:
    public = {method for method, rule in POLICY.items() if rule.public}
    assert public == {
        "oms.gateway.v1.GatewayService/IssueToken",
        "oms.gateway.v1.GatewayService/SignIn",
        "oms.gateway.v1.GatewayService/GetConsoleAsset",
        "oms.gateway.v1.GatewayService/ReceivePaymentWebhook",
        "oms.gateway.v1.GatewayService/ReceiveCarrierWebhook",
        "oms.gateway.v1.GatewayService/ReceiveChannelWebhook",
        "oms.gateway.v1.GatewayService/ReceiveTrackingPush",
        "oms.gateway.v1.GatewayService/ReceiveProviderNotification",
    }


def test_no_role_but_admins_may_list_the_audit_log() -> None:
    assert POLICY["oms.gateway.v1.GatewayService/ListAuditRecords"].roles <= {"admin", "supervisor"}


# ---- row scope: every public method says how far a scoped caller reaches with it --------------------

# fields that name an order, a customer or their data: reference data (Reach.SHARED) answers none
PERSONAL_OR_ORDER_FIELDS = frozenset(
    {"order_id", "buyer_id", "customer_id", "channel_order_id", "buyer_phone", "phone", "address", "receiver"}
)
# gateway methods that read through orders under the caller's own assertion, so orders' row scope holds
READS_THROUGH_ORDERS = frozenset({"oms.gateway.v1.GatewayService/RevealOrder"})
# the services that keep a scoped caller to its rows themselves, from the asserted scope
SCOPE_ENFORCING = ("oms.orders.v1.OrdersService/", "oms.aftersales.v1.AftersalesService/")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _method(name: str) -> Any:
    public_proto_modules()
    service, _, method = name.partition("/")
    return descriptor_pool.Default().FindMethodByName(f"{service}.{method}")


def _field_names(message: Any, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if message.full_name in seen:
        return set()
    seen.add(message.full_name)
    names = set()
    for field in message.fields:
        names.add(field.name)
        if field.message_type is not None:
            names |= _field_names(field.message_type, seen)
    return names


def reach_table() -> str:
    """docs/api.md's table of every public method's reach, as the policy says it."""
    lines = ["| method | reach | roles |", "|---|---|---|"]
    for name, rule in sorted(POLICY.items()):
        roles = ", ".join(sorted(rule.roles)) or "anyone (signed or exchanged credentials)"
        lines.append(f"| `{name.removeprefix('oms.')}` | {rule.reach.value} | {roles} |")
    return "\n".join(lines)


def test_every_public_method_has_a_reach_that_fits_its_roles() -> None:
    problems = []
    for name, rule in POLICY.items():
        scoped = rule.roles & SCOPED_ROLES
        if rule.reach is Reach.STAFF and scoped:
            problems.append(f"{name}: staff-only but allows {sorted(scoped)}")
        if (rule.reach is Reach.PUBLIC) != rule.public:
            problems.append(f"{name}: public methods, and only they, have Reach.PUBLIC")
        if (
            rule.reach is Reach.ORDER
            and "order_id" not in _method(name).input_type.fields_by_name
            # the stream filters each alert by the order it names
            and name != "oms.gateway.v1.GatewayService/WatchAlerts"
        ):
            problems.append(f"{name}: Reach.ORDER needs the request to name an order_id")
        if rule.reach is Reach.ROWS and not (
            name.startswith(SCOPE_ENFORCING) or name in READS_THROUGH_ORDERS
        ):
            # only orders and after-sales filter by the asserted scope (after-sales' tests prove it);
            # elsewhere the row scope would be unenforced
            problems.append(f"{name}: Reach.ROWS outside orders (use ORDER, OWN or STAFF)")
        if rule.reach is Reach.SHARED:
            leaked = _field_names(_method(name).output_type) & PERSONAL_OR_ORDER_FIELDS
            if leaked:
                problems.append(f"{name}: shared reference data answers {sorted(leaked)}")
        if scoped and rule.reach not in (Reach.ROWS, Reach.ORDER, Reach.OWN, Reach.SHARED):
            problems.append(f"{name}: a scoped role without a row rule")
    assert problems == []


def test_a_method_about_an_order_that_scoped_roles_may_call_is_scoped_by_that_order() -> None:
    loose = [
        name
        for name, rule in POLICY.items()
        if rule.roles & SCOPED_ROLES
        and "order_id" in _method(name).input_type.fields_by_name
        and rule.reach not in (Reach.ROWS, Reach.ORDER)
    ]
    assert loose == []


def test_the_api_guide_lists_every_public_method_with_its_reach() -> None:
    text = DOCS.read_text()
    begin, end = "<!-- reach:begin -->\n", "\n<!-- reach:end -->"
    assert begin in text and end in text, "docs/api.md has no reach table"
    listed = text.split(begin, 1)[1].split(end, 1)[0]
    assert listed == reach_table(), "docs/api.md's reach table is stale: paste reach_table()'s output"
