"""The thin gRPC servicer: proto in → mappers → use case → mappers → proto out."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from google.api import httpbody_pb2

from oms.aftersales.v1 import aftersales_pb2 as pb
from oms.aftersales.v1 import aftersales_pb2_grpc
from services.aftersales import handlers, mappers
from services.aftersales.handlers.ports import Orders, TicketFilter, UnitOfWork
from services.aftersales.handlers.refunds import ledger_csv_header
from services.kit import identity
from services.kit.clock import Clock
from services.kit.errors import InvalidArgument
from services.kit.ids import is_id, new_id

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AftersalesService"].full_name
Ctx = Any
EXPORT_PAGE = 500


def _time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


class AftersalesServicer(aftersales_pb2_grpc.AftersalesServiceServicer):
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        orders: Orders,
        policy: handlers.Policy,
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.uow = uow_factory
        self.orders = orders
        self.policy = policy
        self.clock = clock
        self.on_queued = on_queued
        # openings at the same moment are written in one transaction
        self.opener = handlers.TicketOpener(uow_factory, orders, policy)

    async def _scope(self) -> handlers.Scope:
        principal = identity.current()
        scope = handlers.Scope(
            customer_id=principal.customer_id, agent_id=principal.agent_id, provider=principal.provider
        )
        if scope.agent_id:
            customers = await self.orders.agent_customers(scope.agent_id)
            scope = handlers.Scope(agent_id=scope.agent_id, customers=customers)
        return scope

    def _message(self, ticket: Any) -> pb.Ticket:
        return mappers.ticket_message(ticket, self.policy, self.clock.now())

    async def OpenTicket(self, request: pb.OpenTicketRequest, context: Ctx) -> pb.OpenTicketResponse:
        order_id = request.order_id.strip()
        if not is_id(order_id):
            raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
        scope = await self._scope()
        mappers.kind_of(request.kind)  # a bad kind is refused before orders is asked
        order = await self.orders.snapshot(order_id)
        if scope.hides_customer(order.customer_id):
            raise handlers.not_found_order(order_id)
        command = mappers.open_command(request, new_id(), order, identity.current().subject)
        ticket = await self.opener.open(command, request.request_id.strip(), scope)
        self.on_queued()
        return pb.OpenTicketResponse(ticket=self._message(ticket))

    async def GetTicket(self, request: pb.GetTicketRequest, context: Ctx) -> pb.GetTicketResponse:
        ticket = await handlers.get_ticket(self.uow(), request.ticket_id, await self._scope())
        return pb.GetTicketResponse(ticket=self._message(ticket))

    async def ListTickets(self, request: pb.ListTicketsRequest, context: Ctx) -> pb.ListTicketsResponse:
        where = TicketFilter(
            order_id=request.order_id.strip(),
            customer_id=request.customer_id.strip(),
            status=mappers.status_name(request.status),
            overdue_only=request.overdue_only,
        )
        tickets, token = await handlers.list_tickets(
            self.uow(), where, await self._scope(), request.page_size, request.page_token
        )
        return pb.ListTicketsResponse(tickets=[self._message(t) for t in tickets], next_page_token=token)

    async def ApproveTicket(self, request: pb.ApproveTicketRequest, context: Ctx) -> pb.ApproveTicketResponse:
        ticket = await handlers.decide(
            self.uow(),
            self.policy,
            request.ticket_id,
            True,
            identity.current().subject,
            request.note,
            await self._scope(),
        )
        self.on_queued()
        return pb.ApproveTicketResponse(ticket=self._message(ticket))

    async def RejectTicket(self, request: pb.RejectTicketRequest, context: Ctx) -> pb.RejectTicketResponse:
        ticket = await handlers.decide(
            self.uow(),
            self.policy,
            request.ticket_id,
            False,
            identity.current().subject,
            request.reason,
            await self._scope(),
        )
        return pb.RejectTicketResponse(ticket=self._message(ticket))

    async def AddTicketNote(self, request: pb.AddTicketNoteRequest, context: Ctx) -> pb.AddTicketNoteResponse:
        ticket = await handlers.add_note(
            self.uow(),
            self.policy,
            request.ticket_id,
            identity.current().subject,
            request.text,
            await self._scope(),
        )
        return pb.AddTicketNoteResponse(ticket=self._message(ticket))

    async def ReceiveReturn(self, request: pb.ReceiveReturnRequest, context: Ctx) -> pb.ReceiveReturnResponse:
        ticket, restocked = await handlers.receive_return(
            self.uow(),
            self.policy,
            request.order_code,
            request.warehouse_id,
            mappers.received_lines(request),
            request.ticket_id,
        )
        self.on_queued()
        return pb.ReceiveReturnResponse(ticket=self._message(ticket), restocked=restocked)

    async def ReportRefund(self, request: pb.ReportRefundRequest, context: Ctx) -> pb.ReportRefundResponse:
        ticket, news = await handlers.report_refund(
            self.uow(),
            self.policy,
            request.out_refund_no,
            request.status,
            request.provider_refund_id,
            await self._scope(),
        )
        return pb.ReportRefundResponse(
            ticket_id=ticket.ticket_id,
            status=f"TICKET_STATUS_{ticket.status.value}",  # type: ignore[arg-type]
            duplicate=not news,
        )

    async def ListRefunds(self, request: pb.ListRefundsRequest, context: Ctx) -> pb.ListRefundsResponse:
        rows, token = await handlers.refund_ledger(
            self.uow(),
            _time(request, "since"),
            _time(request, "until"),
            request.page_size,
            request.page_token,
        )
        return pb.ListRefundsResponse(
            refunds=[mappers.refund_entry(row) for row in rows], next_page_token=token
        )

    async def ExportRefunds(
        self, request: pb.ExportRefundsRequest, context: Ctx
    ) -> AsyncIterator[pb.ExportRefundsResponse]:
        since, until = _time(request, "since"), _time(request, "until")
        header = ledger_csv_header()
        yield pb.ExportRefundsResponse(csv=_csv_chunk([header]))
        token = ""
        while True:
            rows, token = await handlers.refund_ledger(self.uow(), since, until, EXPORT_PAGE, token)
            if rows:
                yield pb.ExportRefundsResponse(
                    csv=_csv_chunk([[_cell(row.get(name)) for name in header] for row in rows])
                )
            if not token:
                return

    async def PutApprovalRules(
        self, request: pb.PutApprovalRulesRequest, context: Ctx
    ) -> pb.PutApprovalRulesResponse:
        drafted = await handlers.put_draft(
            self.uow(), mappers.rule_document(request.document), request.note, identity.current().subject
        )
        return pb.PutApprovalRulesResponse(version=drafted.version)

    async def ListApprovalRules(
        self, request: pb.ListApprovalRulesRequest, context: Ctx
    ) -> pb.ListApprovalRulesResponse:
        versions = await handlers.list_versions(self.uow())
        return pb.ListApprovalRulesResponse(rule_sets=[mappers.rule_set_message(v) for v in versions])

    async def DryRunApprovalRules(
        self, request: pb.DryRunApprovalRulesRequest, context: Ctx
    ) -> pb.DryRunApprovalRulesResponse:
        result = await handlers.dry_run(self.uow(), request.version, request.limit)
        return mappers.dry_run_message(result)

    async def ActivateApprovalRules(
        self, request: pb.ActivateApprovalRulesRequest, context: Ctx
    ) -> pb.ActivateApprovalRulesResponse:
        activated = await handlers.activate(self.uow(), request.version)
        return pb.ActivateApprovalRulesResponse(rule_set=mappers.rule_set_message(activated))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


def _csv_chunk(rows: list[list[str]]) -> httpbody_pb2.HttpBody:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        # a cell a spreadsheet would run as a formula is quoted as text (CSV injection)
        writer.writerow([f"'{cell}" if cell[:1] in ("=", "+", "-", "@") else cell for cell in row])
    return httpbody_pb2.HttpBody(content_type="text/csv; charset=utf-8", data=buffer.getvalue().encode())
