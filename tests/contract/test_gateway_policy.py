"""Every public RPC has exactly one policy entry, and nothing in the policy is stale."""

from __future__ import annotations

from services.gateway.policy import POLICY
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


def test_only_token_exchange_and_signed_webhooks_are_public() -> None:
    public = {method for method, rule in POLICY.items() if rule.public}
    assert public == {
        "oms.gateway.v1.GatewayService/IssueToken",
        "oms.gateway.v1.GatewayService/ReceivePaymentWebhook",
        "oms.gateway.v1.GatewayService/ReceiveCarrierWebhook",
        "oms.gateway.v1.GatewayService/ReceiveChannelWebhook",
    }


def test_no_role_but_admins_may_list_the_audit_log() -> None:
    assert POLICY["oms.gateway.v1.GatewayService/ListAuditRecords"].roles <= {"admin", "supervisor"}
