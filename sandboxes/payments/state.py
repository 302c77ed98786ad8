"""The sandbox's memory: paid trades and their refunds, idempotent on the merchant's refund number, and
the count of refunds actually executed per number (what "refunded once" is proved with).

Everything here is synchronous, so "has this refund number been used?", "is enough left?" and the
insert happen without an await between them: two racing calls with one number refund once, and two
numbers racing for the last yuan never refund more than was paid.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

PROCESSING, SUCCESS, CLOSED, ABNORMAL = "PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL"


class Refused(Exception):
    """A refund the provider refuses; ``kind`` is the sandbox's name for the reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


NOT_ENOUGH = "NOT_ENOUGH"
DISCORDANT = "DISCORDANT"
OTHER_TRADE = "OTHER_TRADE"


@dataclass
class Refund:
    provider: str
    refund_no: str
    refund_id: str
    trade: Trade
    amount: int
    reason: str
    notify_url: str | None
    created_at: datetime
    outcome: str
    status: str = PROCESSING
    success_at: datetime | None = None

    def summary(self, executed: int, attempts: int) -> dict[str, object]:
        return {
            "provider": self.provider,
            "refund_no": self.refund_no,
            "refund_id": self.refund_id,
            "out_trade_no": self.trade.out_trade_no,
            "trade_no": self.trade.trade_no,
            "amount": self.amount,
            "status": self.status,
            "executed": executed,
            "attempts": attempts,
        }


@dataclass
class Trade:
    provider: str
    out_trade_no: str
    trade_no: str
    total: int
    paid_at: datetime
    notify_url: str | None
    refunds: list[Refund] = field(default_factory=list)

    @property
    def refunded(self) -> int:
        """Fen gone back to the payer or on their way (a CLOSED refund gave its amount back)."""
        return sum(refund.amount for refund in self.refunds if refund.status != CLOSED)

    @property
    def refundable(self) -> int:
        return self.total - self.refunded

    def summary(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "out_trade_no": self.out_trade_no,
            "trade_no": self.trade_no,
            "total": self.total,
            "paid_at": self.paid_at.isoformat(),
            "refunded": self.refunded,
            "refundable": self.refundable,
            "refunds": [refund.refund_no for refund in self.refunds],
        }


def _scope(provider: str, out_trade_no: str) -> str:
    # WeChat's out_refund_no is unique per merchant; Alipay's out_request_no per trade
    return out_trade_no if provider == "alipay" else ""


class Store:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:payments")
        self._trades: dict[tuple[str, str], Trade] = {}
        self._by_trade_no: dict[tuple[str, str], Trade] = {}
        self._refunds: dict[tuple[str, str, str], Refund] = {}
        # counted apart from the records: a bug that replaced a record would still show 2 here
        self.executions: Counter[tuple[str, str, str]] = Counter()
        self.attempts: Counter[tuple[str, str, str]] = Counter()

    def _digits(self, count: int) -> str:
        return "".join(str(self._rng.randrange(10)) for _ in range(count))

    def _trade_no(self, provider: str, now: datetime) -> str:
        while True:
            if provider == "wechat_pay":
                number = f"4200{self._digits(4)}{now:%Y%m%d}{self._digits(12)}"
            else:
                number = f"{now:%Y%m%d}22{self._digits(18)}"
            if (provider, number) not in self._by_trade_no:
                return number

    def pay(
        self, provider: str, out_trade_no: str, total: int, notify_url: str | None, now: datetime
    ) -> tuple[Trade, bool]:
        """The paid trade and whether it is new; the same order number again is the same payment."""
        existing = self._trades.get((provider, out_trade_no))
        if existing is not None:
            if existing.total != total:
                raise Refused(DISCORDANT, f"{out_trade_no} was paid {existing.total} fen, not {total}")
            return existing, False
        trade = Trade(provider, out_trade_no, self._trade_no(provider, now), total, now, notify_url)
        self._trades[(provider, out_trade_no)] = trade
        self._by_trade_no[(provider, trade.trade_no)] = trade
        return trade, True

    def find_trade(self, provider: str, out_trade_no: str = "", trade_no: str = "") -> Trade | None:
        if trade_no:
            found = self._by_trade_no.get((provider, trade_no))
            if found is None or (out_trade_no and found.out_trade_no != out_trade_no):
                return None
            return found
        return self._trades.get((provider, out_trade_no)) if out_trade_no else None

    def trades(self, provider: str | None = None) -> list[Trade]:
        return [trade for trade in self._trades.values() if provider in (None, trade.provider)]

    def find_refund(self, provider: str, refund_no: str, out_trade_no: str = "") -> Refund | None:
        return self._refunds.get((provider, _scope(provider, out_trade_no), refund_no))

    def refunds(self) -> list[Refund]:
        return list(self._refunds.values())

    def counts(self, refund: Refund) -> tuple[int, int]:
        key = (refund.provider, _scope(refund.provider, refund.trade.out_trade_no), refund.refund_no)
        return self.executions[key], self.attempts[key]

    def attempted(self, provider: str, refund_no: str, out_trade_no: str = "") -> None:
        self.attempts[(provider, _scope(provider, out_trade_no), refund_no)] += 1

    def refund(
        self,
        trade: Trade,
        refund_no: str,
        amount: int,
        reason: str,
        notify_url: str | None,
        now: datetime,
        outcome: str,
    ) -> tuple[Refund, bool]:
        """The refund of that number and whether it is new (money moved now); Refused otherwise."""
        key = (trade.provider, _scope(trade.provider, trade.out_trade_no), refund_no)
        existing = self._refunds.get(key)
        if existing is not None:
            if existing.trade is not trade:
                raise Refused(OTHER_TRADE, f"{refund_no} already refunds trade {existing.trade.out_trade_no}")
            if existing.amount != amount:
                raise Refused(DISCORDANT, f"{refund_no} refunded {existing.amount} fen, not {amount}")
            return existing, False
        if amount > trade.refundable:
            raise Refused(NOT_ENOUGH, f"{amount} fen asked, {trade.refundable} of {trade.total} left")
        refund = Refund(
            provider=trade.provider,
            refund_no=refund_no,
            refund_id=f"50{self._digits(4)}{now:%Y%m%d}{self._digits(15)}",
            trade=trade,
            amount=amount,
            reason=reason,
            notify_url=notify_url,
            created_at=now,
            outcome=outcome,
        )
        self._refunds[key] = refund
        trade.refunds.append(refund)
        self.executions[key] += 1
        return refund, True

    @staticmethod
    def settle(refund: Refund, now: datetime) -> None:
        """PROCESSING → its outcome (a CLOSED refund gives its amount back to the trade)."""
        if refund.status != PROCESSING:
            return
        refund.status = refund.outcome
        if refund.status == SUCCESS:
            refund.success_at = now
