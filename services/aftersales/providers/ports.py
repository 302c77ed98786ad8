"""What the provider clients take and give: plain dataclasses, the refund statuses, the errors a caller
acts on, and the `RefundProvider` protocol both clients implement.

A refund is numbered by the caller (`RefundRequest.refund_no`: WeChat's ``out_refund_no``, Alipay's
``out_request_no``), derived from the ticket: both providers refund a number once, so a call that
failed with `RetryableError` is sent again with the **identical** request and can never refund twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from services.kit.errors import InvalidArgument

REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{6,32}$")


class Provider(StrEnum):
    """Named as orders' payments and the gateway's webhook senders name them."""

    WECHAT_PAY = "wechat_pay"
    ALIPAY = "alipay"


class RefundStatus(StrEnum):
    PROCESSING = "PROCESSING"  # accepted; a notification or a query tells how it ends
    SUCCESS = "SUCCESS"  # the money went back
    CLOSED = "CLOSED"  # the provider closed it: nothing was refunded (a new refund is a new decision)
    ABNORMAL = "ABNORMAL"  # stuck at the provider (the payer's account or card is gone): a person acts
    NOT_ENOUGH = "NOT_ENOUGH"  # refused: more than what is left of the payment
    NOT_FOUND = "NOT_FOUND"  # refused: no such trade; for a query, no such refund
    REJECTED = "REJECTED"  # refused for another business reason (`code`, `message`)

    @property
    def final(self) -> bool:
        return self is not RefundStatus.PROCESSING

    @property
    def refused(self) -> bool:
        """Nothing was refunded by this call, and sending it again will not change that."""
        return self in (RefundStatus.NOT_ENOUGH, RefundStatus.NOT_FOUND, RefundStatus.REJECTED)


@dataclass(frozen=True)
class RefundRequest:
    """One refund of a payment. Amounts in fen; `total` is what the whole payment was (WeChat checks it)."""

    refund_no: str
    out_trade_no: str
    amount: int
    total: int
    provider_trade_no: str = ""  # WeChat's transaction_id / Alipay's trade_no, used when given
    reason: str = ""
    notify_url: str = ""  # WeChat: where the refund's notification goes (else the merchant's default)
    currency: str = "CNY"

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        if not REFUND_NO.match(self.refund_no):
            problems.append(("refund_no", "1 to 64 characters of 0-9 A-Z a-z _ - | * @"))
        if not TRADE_NO.match(self.out_trade_no):
            problems.append(("out_trade_no", "6 to 32 characters of 0-9 A-Z a-z _ - | * @"))
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            problems.append(("amount", "a whole number of fen above 0"))
        if isinstance(self.total, bool) or not isinstance(self.total, int) or self.total <= 0:
            problems.append(("total", "a whole number of fen above 0"))
        elif isinstance(self.amount, int) and self.amount > self.total:
            problems.append(("amount", f"{self.amount} fen is more than the payment's {self.total}"))
        if self.currency != "CNY":
            problems.append(("currency", "only CNY"))
        if len(self.reason) > 80:
            problems.append(("reason", "at most 80 characters"))
        if self.notify_url and not self.notify_url.startswith(("http://", "https://")):
            problems.append(("notify_url", "an http(s) URL"))
        if problems:
            raise InvalidArgument.of(problems)


@dataclass(frozen=True)
class RefundResult:
    provider: Provider
    status: RefundStatus
    refund_no: str
    out_trade_no: str = ""
    provider_trade_no: str = ""
    provider_refund_id: str = ""  # WeChat's refund_id (Alipay numbers refunds by refund_no alone)
    amount: int = 0  # fen refunded by this refund (0 when refused or not found)
    success_time: str = ""
    # Alipay: did this very call move money (False on a replay of a refund already made)
    fund_change: bool | None = None
    code: str = ""  # the provider's own code for a refusal (NOT_ENOUGH, ACQ.TRADE_NOT_EXIST, …)
    message: str = ""


class ProviderError(Exception):
    def __init__(self, provider: Provider, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class RetryableError(ProviderError):
    """No usable answer (a timeout, a dropped connection, SYSTEM_ERROR, HTTP 5xx or 429, an answer whose
    signature does not verify). Send the identical request again. `uncertain`: the provider may have
    carried it out (ask with `query`, or retry: the number makes the retry harmless)."""

    def __init__(self, provider: Provider, reason: str, uncertain: bool) -> None:
        super().__init__(provider, reason)
        self.uncertain = uncertain


class CallRefused(ProviderError):
    """The provider refused the call itself: our credentials, our signature, a malformed call. Retrying
    does not help; the configuration or the code needs fixing."""

    def __init__(self, provider: Provider, code: str, reason: str) -> None:
        super().__init__(provider, f"{code} {reason}".strip())
        self.code = code


class RefundProvider(Protocol):
    provider: Provider

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def query(self, refund_no: str, out_trade_no: str) -> RefundResult: ...
