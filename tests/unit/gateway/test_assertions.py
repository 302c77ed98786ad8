"""What the gateway tells a service about its caller: one signed assertion, nothing the caller sent."""

from __future__ import annotations

from services.gateway import auth
from services.gateway.gate import Caller, Gate, asserted
from services.kit.identity import ASSERTION_HEADER, Principal
from tests import identity


def gate() -> Gate:
    # only the signer matters for what is forwarded
    return Gate(None, {}, 300, None, None, {}, lambda: None, identity.signer())  # type: ignore[arg-type]


def forwarded(principal: auth.Principal, reveal: bool = False) -> tuple[dict[str, str], Principal]:
    caller_sent = {
        "x-request-id": "r-1",
        "x-oms-roles": "admin",
        "x-oms-principal": "root",
        ASSERTION_HEADER: identity.signer().mint(Principal("root", "user", frozenset({"admin"})), "orders"),
    }
    out = gate().upstream_metadata(Caller(principal, "1.2.3.4", "r-1"), caller_sent, "orders", reveal)
    headers = dict(out)
    assert len([key for key, _ in out if key == ASSERTION_HEADER]) == 1
    return headers, identity.verifier().verify(headers[ASSERTION_HEADER], "orders")


def test_the_callers_own_identity_headers_are_dropped_and_the_gateways_assertion_sent() -> None:
    headers, told = forwarded(auth.Principal("alice", "user", frozenset({"ops"})))
    assert told == Principal("alice", "user", frozenset({"ops"}))
    assert headers["x-request-id"] == "r-1"
    assert not {"x-oms-roles", "x-oms-principal"} & set(headers)


def test_scoped_callers_are_told_with_their_scope_and_staff_without() -> None:
    _, customer = forwarded(auth.Principal("c-9", "user", frozenset({"customer"}), customer_id="c-9"))
    assert (customer.customer_id, customer.agent_id) == ("c-9", "")
    _, agent = forwarded(auth.Principal("agent-7", "user", frozenset({"cs_agent"})))
    assert (agent.customer_id, agent.agent_id) == ("", "agent-7")
    _, staff = forwarded(auth.Principal("sup", "user", frozenset({"cs_agent", "supervisor"})))
    assert (staff.customer_id, staff.agent_id) == ("", "")
    _, key = forwarded(auth.Principal("k", "integration", frozenset({"channel"}), channel="TAOBAO"))
    assert (key.actor_type, key.channel) == ("channel", "TAOBAO")


def test_only_the_gateways_audited_reveal_sets_the_reveal_claim() -> None:
    principal = auth.Principal("agent-7", "user", frozenset({"cs_agent"}))
    assert not forwarded(principal)[1].reveal
    assert forwarded(principal, reveal=True)[1].reveal
    assert asserted(principal, reveal=True).reveal
