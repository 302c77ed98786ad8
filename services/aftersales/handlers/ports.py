"""What the use cases need from outside: the unit of work with its repositories (the store implements
it, tests fake it), orders and inventory (gRPC peers), and the payment providers (HTTP clients)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from services.aftersales.domain.approval import PastTicket, RuleSetVersion
from services.aftersales.domain.events import Event
from services.aftersales.domain.order_snapshot import OrderSnapshot
from services.aftersales.domain.tickets import Ticket
from services.aftersales.domain.vouchers import Voucher
from services.kit.clock import Clock


@dataclass(frozen=True)
class TicketFilter:
    order_id: str = ""
    customer_id: str = ""
    # the scope of an agent: only these customers' tickets (None: no limit)
    customers: frozenset[str] | None = None
    channel: str = ""
    status: str = ""
    overdue_only: bool = False


@dataclass(frozen=True)
class RefundJob:
    """A ticket's refund waiting to be sent (or asked after) at its provider."""

    ticket_id: str
    order_id: str
    provider: str
    transaction_id: str
    merchant_order_no: str
    refund_no: str
    currency: str
    cash_minor: int
    total_paid_minor: int
    status: str
    attempts: int


@dataclass(frozen=True)
class RestockJob:
    """Work a received return leaves for another service, sent until it is done: its intact units for
    inventory to put back (`restock`), or an exchange's replacement for orders to ship (`replacement`:
    the same SKUs again, nothing to pay, to the original order's customer and address)."""

    return_id: str
    ticket_id: str
    order_id: str
    warehouse_id: str
    lines: tuple[tuple[str, int], ...]
    attempts: int
    kind: str = "restock"


class Tickets(Protocol):
    async def lock_order(self, order_id: str) -> None:
        """Serialise this transaction with every other one about the order's tickets."""

    async def lock_orders(self, order_ids: list[str]) -> None:
        """`lock_order` for several orders, in an order every such caller keeps."""

    async def of_order(self, order_id: str) -> list[Ticket]: ...

    async def of_orders_and_requests(
        self, order_ids: list[str], request_ids: list[str]
    ) -> tuple[dict[str, list[Ticket]], dict[str, Ticket]]:
        """Each order's tickets, oldest first, and the ticket each request id opened."""

    async def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None: ...

    async def by_request(self, request_id: str) -> Ticket | None: ...

    async def get_many(self, ticket_ids: list[str], *, lock: bool = False) -> dict[str, Ticket]:
        """The tickets of these ids that exist, by id."""

    async def by_replacement(self, order_id: str, *, lock: bool = False) -> Ticket | None: ...

    async def by_refund_no(self, refund_no: str, *, lock: bool = False) -> Ticket | None: ...

    async def add(self, ticket: Ticket, request_id: str, next_deadline: datetime | None) -> None:
        """Raises FailedPrecondition(reason) when the order has an open ticket for the same reason."""

    async def save(self, ticket: Ticket, next_deadline: datetime | None) -> None:
        """Raises ConcurrentChange when the ticket changed since it was read."""

    async def due(self, now: datetime, limit: int) -> list[Ticket]:
        """Tickets whose next response-time deadline has passed, locked (others skip them)."""

    async def page(
        self, where: TicketFilter, now: datetime, size: int, token: str
    ) -> tuple[list[Ticket], str]:
        """Newest first; the token continues after the last one."""

    async def decided(self, limit: int) -> list[PastTicket]:
        """Past tickets the rules decided, newest first, for a dry run."""


class Claims(Protocol):
    async def claim(self, order: OrderSnapshot, voucher: Voucher) -> None:
        """Add the voucher's units and amounts to what the order's lines have given back; the database
        refuses (FailedPrecondition naming the line) a claim past what was paid, even concurrently."""

    async def release(self, order_id: str, voucher: Voucher) -> None:
        """A refund the provider closed gives its amounts back to the lines."""


class Refunds(Protocol):
    async def add(self, ticket: Ticket, approved_by: str, now: datetime) -> None:
        """The ticket's current refund attempt, due to be sent now."""

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RefundJob]:
        """Refunds due to be sent or asked after; each claimed until `lease_until`."""

    async def answered(
        self,
        refund_no: str,
        status: str,
        provider_refund_id: str,
        next_attempt_at: datetime | None,
        error: str,
    ) -> None: ...

    async def settled(self, refund_no: str, status: str, provider_refund_id: str, at: datetime) -> None: ...

    async def ledger(
        self, since: datetime | None, until: datetime | None, size: int, token: str
    ) -> tuple[list[dict[str, object]], str]:
        """The finance ledger's rows (one per refund), newest first."""


class Restocks(Protocol):
    async def add(self, job: RestockJob, now: datetime) -> None: ...

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RestockJob]: ...

    async def done(self, return_id: str, now: datetime) -> None: ...

    async def retry(self, return_id: str, at: datetime, error: str) -> None: ...


class RuleSets(Protocol):
    async def active(self) -> RuleSetVersion | None: ...

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None: ...

    async def all(self) -> list[RuleSetVersion]: ...

    async def next_version(self) -> int: ...

    async def save(self, version: RuleSetVersion, created_by: str = "") -> None: ...


class UnitOfWork(Protocol):
    clock: Clock

    # read-only (properties), so the store's repositories, which do more than these, fit them
    @property
    def tickets(self) -> Tickets: ...

    @property
    def claims(self) -> Claims: ...

    @property
    def refunds(self) -> Refunds: ...

    @property
    def restocks(self) -> Restocks: ...

    @property
    def rule_sets(self) -> RuleSets: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def emit(self, event: Event) -> None: ...

    async def commit(self) -> None: ...


# ---- outside the unit of work: other services and the payment providers


class Orders(Protocol):
    async def snapshot(self, order_id: str) -> OrderSnapshot:
        """The order as it is now with its payment (NotFound when orders does not have it)."""

    async def agent_customers(self, agent_id: str) -> frozenset[str]: ...

    async def place_replacement(self, job: RestockJob) -> str:
        """An exchange's replacement as an order of its own (idempotent on the job's return id); its id."""


class Inventory(Protocol):
    async def restock(self, job: RestockJob) -> None:
        """Idempotent on the return id; raises Unavailable when inventory cannot be reached."""


@dataclass(frozen=True)
class ProviderAnswer:
    """What a provider said about a refund: PROCESSING, SUCCESS, CLOSED, ABNORMAL, or REFUSED (it will
    never make it, e.g. more than is left of the payment); `retry` when nothing certain was learnt."""

    status: str
    provider_refund_id: str = ""
    detail: str = ""
    retry: bool = False


class Providers(Protocol):
    async def refund(self, job: RefundJob, reason: str) -> ProviderAnswer: ...

    async def query(self, job: RefundJob) -> ProviderAnswer: ...


class ConcurrentChange(Exception):
    """The ticket changed between our read and our write: read again and retry."""


__all__ = [
    "Claims",
    "ConcurrentChange",
    "Inventory",
    "Orders",
    "ProviderAnswer",
    "Providers",
    "RefundJob",
    "Refunds",
    "RestockJob",
    "Restocks",
    "RuleSets",
    "TicketFilter",
    "Tickets",
    "UnitOfWork",
]
