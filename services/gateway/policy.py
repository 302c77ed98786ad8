"""Who may call what: one entry per public RPC (method → roles, rate-limit class, audit, scoping).

A method missing here is refused: adding an RPC to a service needs only an entry in this table (the
gateway forwards it by its service name). Row-level scoping is not decided here: the gateway passes
the caller's scope in metadata and the owning service filters its rows, answering NOT_FOUND for rows
outside the scope so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Klass(StrEnum):
    """Rate-limit classes: reads are cheap, writes cost a transaction, uploads carry megabytes."""

    READ = "read"
    WRITE = "write"
    UPLOAD = "upload"
    AUTH = "auth"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    klass: Klass
    # mutating calls are audited (reveals too); costly writes fail closed when Redis is down
    mutating: bool
    # anyone may call it: the method authenticates its caller itself (token exchange, signed webhooks)
    public: bool = False


STAFF = frozenset({"ops", "supervisor", "admin"})
ORDER_READERS = STAFF | {"cs_agent", "customer", "warehouse", "finance", "risk", "service"}
ORDER_WRITERS = STAFF | {"cs_agent", "risk", "service"}
INGESTERS = STAFF | {"channel", "service"}
PAYMENT_REPORTERS = STAFF | {"payment_provider", "finance", "service"}
SOURCE_REPORTERS = STAFF | {"warehouse", "wms", "carrier", "channel", "service"}
FINANCE = STAFF | {"finance"}
STOCK_READERS = STAFF | {"warehouse", "service", "cs_agent"}
STOCK_WRITERS = STAFF | {"warehouse", "wms", "service"}
ROUTING_ADMINS = STAFF
# who may upload at all; completing an upload also needs the rule of its target (IngestOrders for
# orders, ImportStatement for statements), checked by the gateway at begin and at complete
UPLOADERS = STAFF | {"channel", "service", "finance"}
ADMINS = frozenset({"admin", "supervisor"})
# roles allowed to unmask personal data through the audited reveal
REVEALERS = frozenset({"admin", "supervisor", "cs_agent", "warehouse"})


def _r(roles: frozenset[str], klass: Klass = Klass.READ) -> Rule:
    return Rule(roles, klass, mutating=False)


def _w(roles: frozenset[str], klass: Klass = Klass.WRITE) -> Rule:
    return Rule(roles, klass, mutating=True)


ORDERS = "oms.orders.v1.OrdersService"
INVENTORY = "oms.inventory.v1.InventoryService"
ROUTING = "oms.routing.v1.RoutingService"
GATEWAY = "oms.gateway.v1.GatewayService"

POLICY: dict[str, Rule] = {
    f"{ORDERS}/IngestOrder": _w(INGESTERS),
    f"{ORDERS}/IngestChannelOrder": _w(INGESTERS),
    f"{ORDERS}/IngestOrders": _w(INGESTERS, Klass.UPLOAD),
    f"{ORDERS}/GetOrder": _r(ORDER_READERS),
    f"{ORDERS}/GetOrderByChannel": _r(ORDER_READERS | {"channel"}),
    f"{ORDERS}/ListOrders": _r(ORDER_READERS),
    f"{ORDERS}/ExportOrders": _r(STAFF | {"finance", "risk"}, Klass.UPLOAD),
    f"{ORDERS}/GetOrderStats": _r(STAFF | {"finance", "risk", "cs_agent"}),
    f"{ORDERS}/GetTimeline": _r(ORDER_READERS),
    f"{ORDERS}/CancelOrder": _w(ORDER_WRITERS | {"customer"}),
    f"{ORDERS}/HoldOrder": _w(ORDER_WRITERS),
    f"{ORDERS}/ReleaseOrder": _w(ORDER_WRITERS - {"cs_agent"}),
    f"{ORDERS}/ReportPayment": _w(PAYMENT_REPORTERS),
    f"{ORDERS}/ListPayments": _r(FINANCE | {"risk"}),
    f"{ORDERS}/ReviewPayment": _w(FINANCE),
    f"{ORDERS}/ImportStatement": _w(FINANCE, Klass.UPLOAD),
    f"{ORDERS}/RepairFromStatement": _w(FINANCE),
    f"{ORDERS}/ListDeadLetters": _r(STAFF | {"finance"}),
    f"{ORDERS}/ReplayDeadLetter": _w(STAFF),
    # one write however many steps it replays: an outage's dead letters are replayed in one call
    f"{ORDERS}/ReplayDeadSteps": _w(STAFF),
    f"{ORDERS}/ReportSourceStatus": _w(SOURCE_REPORTERS),
    f"{ORDERS}/GetStatusRules": _r(STAFF | {"warehouse", "cs_agent"}),
    f"{ORDERS}/GetDriftReport": _r(STAFF),
    f"{ORDERS}/ListQuarantine": _r(STAFF),
    f"{ORDERS}/AssignCustomers": _w(ADMINS),
    f"{INVENTORY}/PutWarehouse": _w(STAFF),
    f"{INVENTORY}/PutSku": _w(STAFF),
    f"{INVENTORY}/GetSku": _r(STOCK_READERS | {"channel"}),
    f"{INVENTORY}/ListSkus": _r(STOCK_READERS | {"channel"}),
    f"{INVENTORY}/SetStockPolicy": _w(STAFF),
    f"{INVENTORY}/Reserve": _w(STAFF | {"service"}),
    f"{INVENTORY}/CommitReservation": _w(STAFF | {"service"}),
    f"{INVENTORY}/ReleaseReservation": _w(STAFF | {"service"}),
    f"{INVENTORY}/MoveReservation": _w(STAFF | {"service"}),
    f"{INVENTORY}/GetReservation": _r(STOCK_READERS),
    f"{INVENTORY}/GetAvailability": _r(STOCK_READERS | {"channel", "customer"}),
    f"{INVENTORY}/RecordReceipt": _w(STOCK_WRITERS),
    f"{INVENTORY}/RecordStockCount": _w(STOCK_WRITERS),
    f"{INVENTORY}/AdjustStock": _w(STOCK_WRITERS),
    f"{INVENTORY}/Restock": _w(STOCK_WRITERS),
    f"{INVENTORY}/ListLedger": _r(STAFF | {"warehouse", "finance"}),
    f"{INVENTORY}/CheckInvariants": _w(STAFF),
    f"{INVENTORY}/ListReplenishmentOrders": _r(STAFF | {"warehouse"}),
    f"{INVENTORY}/UpdateReplenishmentOrder": _w(STAFF | {"warehouse"}),
    f"{ROUTING}/PlanFulfilment": _w(STAFF | {"service"}),
    f"{ROUTING}/ExplainDecision": _r(STAFF | {"cs_agent", "warehouse"}),
    f"{ROUTING}/GetRuleSet": _r(ROUTING_ADMINS),
    f"{ROUTING}/SaveDraftRuleSet": _w(ROUTING_ADMINS),
    f"{ROUTING}/PutExpectedDecisions": _w(ROUTING_ADMINS),
    f"{ROUTING}/DryRunRuleSet": _w(ROUTING_ADMINS),
    f"{ROUTING}/ActivateRuleSet": _w(ADMINS),
    f"{ROUTING}/SetShadowRuleSet": _w(ROUTING_ADMINS),
    f"{ROUTING}/GetShadowReport": _r(ROUTING_ADMINS),
    f"{ROUTING}/ListParkedOrders": _r(STAFF),
    f"{GATEWAY}/IssueToken": Rule(frozenset(), Klass.AUTH, mutating=False, public=True),
    f"{GATEWAY}/BeginUpload": _w(UPLOADERS, Klass.UPLOAD),
    f"{GATEWAY}/PutChunk": _w(UPLOADERS, Klass.UPLOAD),
    f"{GATEWAY}/GetUpload": _r(UPLOADERS),
    f"{GATEWAY}/CompleteUpload": _w(UPLOADERS, Klass.UPLOAD),
    f"{GATEWAY}/AbortUpload": _w(UPLOADERS, Klass.UPLOAD),
    f"{GATEWAY}/UploadStream": _w(UPLOADERS, Klass.UPLOAD),
    f"{GATEWAY}/ReceivePaymentWebhook": Rule(frozenset(), Klass.WRITE, mutating=True, public=True),
    f"{GATEWAY}/ReceiveCarrierWebhook": Rule(frozenset(), Klass.WRITE, mutating=True, public=True),
    f"{GATEWAY}/ReceiveChannelWebhook": Rule(frozenset(), Klass.WRITE, mutating=True, public=True),
    f"{GATEWAY}/RevealOrder": _w(REVEALERS, Klass.READ),
    f"{GATEWAY}/ListAuditRecords": _r(ADMINS),
    f"{GATEWAY}/WatchAlerts": _r(STAFF | {"cs_agent", "warehouse", "finance", "risk"}),
}


def rule_for(method: str) -> Rule | None:
    """`/pkg.Service/Method` or `pkg.Service/Method`."""
    return POLICY.get(method.lstrip("/"))


def allowed(rule: Rule, roles: frozenset[str]) -> bool:
    return rule.public or bool(rule.roles & roles)
