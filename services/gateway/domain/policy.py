"""Who may call what: one entry per public RPC (method → roles, rate-limit class, audit, row scope).

A method missing here is refused: adding an RPC to a service needs only an entry in this table (the
gateway forwards it by its service name). Every entry says how far a scoped caller (a customer, a
customer-service agent, a channel's key) reaches with it, its `Reach`; the contract test
(tests/contract/test_gateway_policy.py) fails for an entry whose reach does not fit its roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.principal import UNSCOPED_ROLES, Principal, is_scoped


class Klass(StrEnum):
    """Rate-limit classes: reads are cheap, writes cost a transaction, uploads carry megabytes, and
    carriers' tracking pushes come in floods from a few addresses (limited per address, and never
    refused for want of Redis: a refused push is pushed again, a lost one waits for the poll)."""

    READ = "read"
    WRITE = "write"
    UPLOAD = "upload"
    AUTH = "auth"
    PUSH = "push"


class Reach(StrEnum):
    """How a method keeps a scoped caller to its own rows. Rows outside the scope are answered exactly
    like unknown ids (NOT_FOUND), so ids cannot be probed."""

    # the owning service filters by the scope asserted to it (orders: buyer, agent's customers, channel)
    ROWS = "rows"
    # about one order, named by the request's `order_id` (or, for the alert stream, each alert's): the
    # gateway shows it only when orders shows the caller that order
    ORDER = "order"
    # the caller's own objects, keyed by its principal (uploads); no other principal's are reachable
    OWN = "own"
    # reference data about no order and no customer (catalogue, stock levels, status rules)
    SHARED = "shared"
    # staff and services only: no scoped role may call it
    STAFF = "staff"
    # no principal: the method authenticates its sender itself (token exchange, signed webhooks)
    PUBLIC = "public"


# the roles whose principals are limited to their own rows (see principal.scope_of): a payment provider's
# key reports only its own provider's payments
SCOPED_ROLES = frozenset({"customer", "cs_agent", "channel", "payment_provider"})


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    reach: Reach
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
RISK_TEAM = STAFF | {"risk"}
# roles allowed to unmask personal data through the audited reveal
REVEALERS = frozenset({"admin", "supervisor", "cs_agent", "warehouse"})
# logistics: the warehouse floor (people and its WMS) picks, packs and scans out
WAREHOUSE_FLOOR = STAFF | {"warehouse", "wms"}
SHIPMENT_READERS = STAFF | {"warehouse", "service"}
# a shipment and its tracking, read through an order the caller may see
SHIPMENT_TRACKERS = SHIPMENT_READERS | {"cs_agent", "customer"}
# after-sales: customers open and follow their own tickets, agents and supervisors decide them
TICKET_OPENERS = STAFF | {"cs_agent", "customer", "service"}
TICKET_READERS = TICKET_OPENERS | {"finance", "warehouse"}
TICKET_DECIDERS = STAFF | {"cs_agent"}
RETURN_DESK = WAREHOUSE_FLOOR
REFUND_REPORTERS = STAFF | {"payment_provider", "service"}


def _r(roles: frozenset[str], reach: Reach, klass: Klass = Klass.READ) -> Rule:
    return Rule(roles, reach, klass, mutating=False)


def _w(roles: frozenset[str], reach: Reach, klass: Klass = Klass.WRITE) -> Rule:
    return Rule(roles, reach, klass, mutating=True)


def _public(klass: Klass, mutating: bool) -> Rule:
    return Rule(frozenset(), Reach.PUBLIC, klass, mutating=mutating, public=True)


ROWS, ORDER, OWN, SHARED, STAFF_ONLY = Reach.ROWS, Reach.ORDER, Reach.OWN, Reach.SHARED, Reach.STAFF


ORDERS = "oms.orders.v1.OrdersService"
INVENTORY = "oms.inventory.v1.InventoryService"
ROUTING = "oms.routing.v1.RoutingService"
LOGISTICS = "oms.logistics.v1.LogisticsService"
AFTERSALES = "oms.aftersales.v1.AftersalesService"
GATEWAY = "oms.gateway.v1.GatewayService"

POLICY: dict[str, Rule] = {
    f"{ORDERS}/IngestOrder": _w(INGESTERS, ROWS),
    f"{ORDERS}/IngestChannelOrder": _w(INGESTERS, ROWS),
    f"{ORDERS}/IngestOrders": _w(INGESTERS, ROWS, Klass.UPLOAD),
    f"{ORDERS}/GetOrder": _r(ORDER_READERS, ROWS),
    f"{ORDERS}/GetOrderByChannel": _r(ORDER_READERS | {"channel"}, ROWS),
    f"{ORDERS}/ListOrders": _r(ORDER_READERS, ROWS),
    f"{ORDERS}/ExportOrders": _r(STAFF | {"finance", "risk"}, STAFF_ONLY, Klass.UPLOAD),
    f"{ORDERS}/GetOrderStats": _r(STAFF | {"finance", "risk", "cs_agent"}, ROWS),
    f"{ORDERS}/GetTimeline": _r(ORDER_READERS, ROWS),
    # SLA timers across every customer's orders: the people who own queues, not scoped callers
    f"{ORDERS}/ListSlaTimers": _r(STAFF | {"warehouse", "risk", "service"}, STAFF_ONLY),
    f"{ORDERS}/ListSlaOwners": _r(STAFF | {"warehouse"}, STAFF_ONLY),
    f"{ORDERS}/SetSlaOwners": _w(ADMINS, STAFF_ONLY),
    f"{ORDERS}/SetOrderSlaOwners": _w(STAFF, STAFF_ONLY),
    # the risk rules: the `risk` role reviews what they hold and tunes them; admins activate
    f"{ORDERS}/GetRiskRuleSet": _r(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/SaveRiskRuleSetDraft": _w(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/DryRunRiskRuleSet": _w(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/ActivateRiskRuleSet": _w(ADMINS | {"risk"}, STAFF_ONLY),
    f"{ORDERS}/ListRiskReviews": _r(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/GetRiskEvaluation": _r(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/ReviewRiskHold": _w(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/GetRiskRuleStats": _r(RISK_TEAM, STAFF_ONLY),
    f"{ORDERS}/CancelOrder": _w(ORDER_WRITERS | {"customer"}, ROWS),
    f"{ORDERS}/HoldOrder": _w(ORDER_WRITERS, ROWS),
    f"{ORDERS}/ReleaseOrder": _w(ORDER_WRITERS - {"cs_agent"}, STAFF_ONLY),
    f"{ORDERS}/ReportPayment": _w(PAYMENT_REPORTERS, ROWS),
    f"{ORDERS}/ListPayments": _r(FINANCE | {"risk"}, STAFF_ONLY),
    f"{ORDERS}/ReviewPayment": _w(FINANCE, STAFF_ONLY),
    f"{ORDERS}/ImportStatement": _w(FINANCE, STAFF_ONLY, Klass.UPLOAD),
    f"{ORDERS}/RepairFromStatement": _w(FINANCE, STAFF_ONLY),
    f"{ORDERS}/ListDeadLetters": _r(STAFF | {"finance"}, STAFF_ONLY),
    f"{ORDERS}/ReplayDeadLetter": _w(STAFF, STAFF_ONLY),
    # one write however many steps it replays: an outage's dead letters are replayed in one call
    f"{ORDERS}/ReplayDeadSteps": _w(STAFF, STAFF_ONLY),
    f"{ORDERS}/ReportSourceStatus": _w(SOURCE_REPORTERS, ROWS),
    f"{ORDERS}/GetStatusRules": _r(STAFF | {"warehouse", "cs_agent"}, SHARED),
    f"{ORDERS}/GetDriftReport": _r(STAFF, STAFF_ONLY),
    f"{ORDERS}/ListQuarantine": _r(STAFF, STAFF_ONLY),
    f"{ORDERS}/AssignCustomers": _w(ADMINS, STAFF_ONLY),
    f"{ORDERS}/ListAgentCustomers": _r(ADMINS | {"service"}, STAFF_ONLY),
    f"{ORDERS}/GetChannelHealth": _r(STAFF, STAFF_ONLY),
    f"{INVENTORY}/PutWarehouse": _w(STAFF, STAFF_ONLY),
    f"{INVENTORY}/PutSku": _w(STAFF, STAFF_ONLY),
    f"{INVENTORY}/GetSku": _r(STOCK_READERS | {"channel"}, SHARED),
    f"{INVENTORY}/ListSkus": _r(STOCK_READERS | {"channel"}, SHARED),
    f"{INVENTORY}/SetStockPolicy": _w(STAFF, STAFF_ONLY),
    # splitting a hot row changes how its stock is locked, not what anyone sees: operations' call
    f"{INVENTORY}/SetStockBuckets": _w(frozenset({"ops", "admin"}), STAFF_ONLY),
    f"{INVENTORY}/Reserve": _w(STAFF | {"service"}, STAFF_ONLY),
    f"{INVENTORY}/CommitReservation": _w(STAFF | {"service"}, STAFF_ONLY),
    # the batch calls are orders' process manager's (service-to-service, or a client-credentials token)
    f"{INVENTORY}/ReserveBatch": _w(frozenset({"service"}), STAFF_ONLY),
    f"{INVENTORY}/CommitReservations": _w(frozenset({"service"}), STAFF_ONLY),
    f"{INVENTORY}/ReleaseReservation": _w(STAFF | {"service"}, STAFF_ONLY),
    f"{INVENTORY}/MoveReservation": _w(STAFF | {"service"}, STAFF_ONLY),
    f"{INVENTORY}/GetReservation": _r(STOCK_READERS, ORDER),
    f"{INVENTORY}/GetAvailability": _r(STOCK_READERS | {"channel", "customer"}, SHARED),
    f"{INVENTORY}/RecordReceipt": _w(STOCK_WRITERS, STAFF_ONLY),
    f"{INVENTORY}/RecordStockCount": _w(STOCK_WRITERS, STAFF_ONLY),
    f"{INVENTORY}/AdjustStock": _w(STOCK_WRITERS, STAFF_ONLY),
    f"{INVENTORY}/Restock": _w(STOCK_WRITERS, STAFF_ONLY),
    f"{INVENTORY}/ListLedger": _r(STAFF | {"warehouse", "finance"}, STAFF_ONLY),
    f"{INVENTORY}/CheckInvariants": _w(STAFF, STAFF_ONLY),
    f"{INVENTORY}/ListReplenishmentOrders": _r(STAFF | {"warehouse"}, STAFF_ONLY),
    f"{INVENTORY}/UpdateReplenishmentOrder": _w(STAFF | {"warehouse"}, STAFF_ONLY),
    f"{ROUTING}/PlanFulfilment": _w(STAFF | {"service"}, STAFF_ONLY),
    f"{ROUTING}/PlanFulfilments": _w(frozenset({"service"}), STAFF_ONLY),
    f"{ROUTING}/ExplainDecision": _r(STAFF | {"cs_agent", "warehouse"}, ORDER),
    f"{ROUTING}/GetRuleSet": _r(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/SaveDraftRuleSet": _w(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/PutExpectedDecisions": _w(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/DryRunRuleSet": _w(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/ActivateRuleSet": _w(ADMINS, STAFF_ONLY),
    f"{ROUTING}/SetShadowRuleSet": _w(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/GetShadowReport": _r(ROUTING_ADMINS, STAFF_ONLY),
    f"{ROUTING}/ListParkedOrders": _r(STAFF, STAFF_ONLY),
    # orders' process manager opens and cancels an order's shipments (service-to-service, or a
    # client-credentials token); people change an order through orders, never its shipments directly
    f"{LOGISTICS}/CreateShipments": _w(frozenset({"service"}), STAFF_ONLY),
    f"{LOGISTICS}/CancelShipments": _w(frozenset({"service"}), STAFF_ONLY),
    f"{LOGISTICS}/GetShipment": _r(SHIPMENT_READERS, STAFF_ONLY),
    f"{LOGISTICS}/ListShipments": _r(SHIPMENT_TRACKERS, ORDER),
    f"{LOGISTICS}/GetTracking": _r(SHIPMENT_TRACKERS, ORDER),
    f"{LOGISTICS}/CreateWaybills": _w(STAFF | {"service"}, STAFF_ONLY),
    f"{LOGISTICS}/GetWaybillBatch": _r(STAFF | {"service"}, STAFF_ONLY),
    f"{LOGISTICS}/ListCarriers": _r(STAFF | {"service"}, STAFF_ONLY),
    f"{LOGISTICS}/ListWaybillDeadLetters": _r(STAFF, STAFF_ONLY),
    f"{LOGISTICS}/ReplayWaybillDeadLetter": _w(STAFF, STAFF_ONLY),
    f"{LOGISTICS}/ListPickTasks": _r(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/CreatePickList": _w(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/GetPickList": _r(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/RenderPickList": _r(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/RenderOrderCode": _r(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/ConfirmPick": _w(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/ConfirmPacked": _w(WAREHOUSE_FLOOR, STAFF_ONLY),
    f"{LOGISTICS}/ScanOut": _w(WAREHOUSE_FLOOR, STAFF_ONLY),
    # what a verified carrier push is forwarded to (ReceiveTrackingPush); staff may replay one by hand
    f"{LOGISTICS}/ReportTracking": _w(STAFF | {"carrier"}, STAFF_ONLY, Klass.PUSH),
    f"{LOGISTICS}/ReportTrackingBatch": _w(STAFF | {"carrier"}, STAFF_ONLY, Klass.PUSH),
    f"{LOGISTICS}/ListQuarantinedPushes": _r(STAFF, STAFF_ONLY),
    # after-sales: a scoped caller reaches the tickets of the orders it may see (its own as a customer,
    # its customers' as an agent: after-sales asks orders whose they are), a provider its own refunds
    f"{AFTERSALES}/OpenTicket": _w(TICKET_OPENERS, ORDER),
    f"{AFTERSALES}/GetTicket": _r(TICKET_READERS, ROWS),
    f"{AFTERSALES}/ListTickets": _r(TICKET_READERS, ROWS),
    f"{AFTERSALES}/ApproveTicket": _w(TICKET_DECIDERS, ROWS),
    f"{AFTERSALES}/RejectTicket": _w(TICKET_DECIDERS, ROWS),
    # the ticket's log: whoever may read the ticket writes on it (not the return desk's scanner)
    f"{AFTERSALES}/AddTicketNote": _w(TICKET_READERS - {"warehouse", "service"}, ROWS),
    f"{AFTERSALES}/ReceiveReturn": _w(RETURN_DESK, STAFF_ONLY),
    f"{AFTERSALES}/ReportRefund": _w(REFUND_REPORTERS, ROWS),
    f"{AFTERSALES}/ListRefunds": _r(FINANCE, STAFF_ONLY),
    f"{AFTERSALES}/ExportRefunds": _r(FINANCE, STAFF_ONLY, Klass.UPLOAD),
    f"{AFTERSALES}/PutApprovalRules": _w(ADMINS | {"ops"}, STAFF_ONLY),
    f"{AFTERSALES}/ListApprovalRules": _r(STAFF | {"cs_agent"}, SHARED),
    f"{AFTERSALES}/DryRunApprovalRules": _r(STAFF, STAFF_ONLY),
    f"{AFTERSALES}/ActivateApprovalRules": _w(ADMINS, STAFF_ONLY),
    f"{GATEWAY}/IssueToken": _public(Klass.AUTH, mutating=False),
    f"{GATEWAY}/BeginUpload": _w(UPLOADERS, OWN, Klass.UPLOAD),
    f"{GATEWAY}/PutChunk": _w(UPLOADERS, OWN, Klass.UPLOAD),
    f"{GATEWAY}/GetUpload": _r(UPLOADERS, OWN),
    f"{GATEWAY}/CompleteUpload": _w(UPLOADERS, OWN, Klass.UPLOAD),
    f"{GATEWAY}/AbortUpload": _w(UPLOADERS, OWN, Klass.UPLOAD),
    f"{GATEWAY}/UploadStream": _w(UPLOADERS, OWN, Klass.UPLOAD),
    f"{GATEWAY}/ReceivePaymentWebhook": _public(Klass.WRITE, mutating=True),
    f"{GATEWAY}/ReceiveCarrierWebhook": _public(Klass.WRITE, mutating=True),
    f"{GATEWAY}/ReceiveTrackingPush": _public(Klass.PUSH, mutating=True),
    f"{GATEWAY}/ReceiveProviderNotification": _public(Klass.PUSH, mutating=True),
    f"{GATEWAY}/ReceiveChannelWebhook": _public(Klass.WRITE, mutating=True),
    f"{GATEWAY}/RevealOrder": _w(REVEALERS, ROWS, Klass.READ),
    f"{GATEWAY}/ListAuditRecords": _r(ADMINS, STAFF_ONLY),
    f"{GATEWAY}/WatchAlerts": _r(STAFF | {"cs_agent", "warehouse", "finance", "risk"}, ORDER),
    # the alert records are operations' desk: staff only (a scoped watcher has the live feed)
    f"{GATEWAY}/ListAlerts": _r(STAFF, STAFF_ONLY),
    f"{GATEWAY}/AcknowledgeAlert": _w(STAFF, STAFF_ONLY),
    f"{GATEWAY}/ResolveAlert": _w(STAFF, STAFF_ONLY),
    # the console: a password exchanged for a user's token, users kept by admins, and the console's
    # own files (which hold no data; every figure in them is an API call under the user's token)
    f"{GATEWAY}/SignIn": _public(Klass.AUTH, mutating=False),
    f"{GATEWAY}/PutUser": _w(ADMINS, STAFF_ONLY),
    f"{GATEWAY}/GetConsoleAsset": _public(Klass.READ, mutating=False),
    f"{GATEWAY}/GetPipeline": _r(STAFF, STAFF_ONLY),
}


def rule_for(method: str) -> Rule | None:
    """`/pkg.Service/Method` or `pkg.Service/Method`."""
    return POLICY.get(method.lstrip("/"))


def direct_read(method: str) -> bool:
    """A read Envoy may send straight to its owning service once the gateway's authoriser has admitted
    it (`edge_authz`): not public, not mutating (no audit record is owed), of class read and of reach
    rows, shared or staff (an order-reach method needs the gateway's look at the order first), and not
    the gateway's own. Whether it is unary is the descriptor's to say (`omsctl.envoy`)."""
    rule = rule_for(method)
    return (
        rule is not None
        and not rule.public
        and not rule.mutating
        and rule.klass is Klass.READ
        and rule.reach in (Reach.ROWS, Reach.SHARED, Reach.STAFF)
        and not method.lstrip("/").startswith(f"{GATEWAY}/")
    )


def allowed(rule: Rule, roles: frozenset[str]) -> bool:
    return rule.public or bool(rule.roles & roles)


def refusal(rule: Rule, principal: Principal) -> AttemptReason | None:
    """Why the principal may not call a method of this rule (None: it may): none of its roles, a
    customer naming no customer, or a scoped caller at a staff-only method."""
    if not allowed(rule, principal.roles):
        return AttemptReason.ROLE_NOT_ALLOWED
    if "customer" in principal.roles and not principal.customer_id and not principal.roles & UNSCOPED_ROLES:
        return AttemptReason.CUSTOMER_UNNAMED
    if rule.reach is Reach.STAFF and is_scoped(principal):
        # the roles of staff-only methods are unscoped; a principal holding one of them is too, so
        # this holds only if a rule's roles and its reach ever disagree
        return AttemptReason.SCOPED_CALLER
    return None
