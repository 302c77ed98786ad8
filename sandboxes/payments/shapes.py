"""The JSON and form shapes each provider answers and notifies with, built from the sandbox's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandboxes.payments.config import Credentials
from sandboxes.payments.protocols import alipay, wechat
from sandboxes.payments.state import SUCCESS, Refund, Trade


def _wechat_amount(refund: Refund) -> dict[str, Any]:
    return {
        "total": refund.trade.total,
        "refund": refund.amount,
        "from": [],
        "payer_total": refund.trade.total,
        "payer_refund": refund.amount,
        "settlement_refund": refund.amount,
        "settlement_total": refund.trade.total,
        "discount_refund": 0,
        "currency": "CNY",
    }


def wechat_refund(refund: Refund) -> dict[str, Any]:
    """The answer of ``POST /v3/refund/domestic/refunds`` and ``GET …/refunds/{out_refund_no}``."""
    body: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.refund_no,
        "transaction_id": refund.trade.trade_no,
        "out_trade_no": refund.trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": wechat.rfc3339(refund.created_at),
        "status": refund.status,
        "funds_account": "AVAILABLE",
        "amount": _wechat_amount(refund),
        "promotion_detail": [],
    }
    if refund.status == SUCCESS and refund.success_at is not None:
        body["success_time"] = wechat.rfc3339(refund.success_at)
    return body


def wechat_refund_resource(refund: Refund, credentials: Credentials) -> dict[str, Any]:
    """What a refund notification's resource decrypts to."""
    plain: dict[str, Any] = {
        "mchid": credentials.wechat_mchid,
        "out_trade_no": refund.trade.out_trade_no,
        "transaction_id": refund.trade.trade_no,
        "out_refund_no": refund.refund_no,
        "refund_id": refund.refund_id,
        "refund_status": refund.status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": refund.trade.total,
            "refund": refund.amount,
            "payer_total": refund.trade.total,
            "payer_refund": refund.amount,
        },
    }
    if refund.success_at is not None:
        plain["success_time"] = wechat.rfc3339(refund.success_at)
    return plain


def wechat_transaction(trade: Trade, credentials: Credentials) -> dict[str, Any]:
    """A paid transaction, as ``GET /v3/pay/transactions/out-trade-no/…`` and TRANSACTION.SUCCESS say it."""
    return {
        "appid": credentials.wechat_appid,
        "mchid": credentials.wechat_mchid,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.trade_no,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": wechat.rfc3339(trade.paid_at),
        "payer": {"openid": "oSandboxPayer0000000000000000"},
        "amount": {
            "total": trade.total,
            "payer_total": trade.total,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


def alipay_refund(trade: Trade, refund: Refund, fund_change: bool) -> dict[str, Any]:
    return alipay.node(
        alipay.SUCCESS,
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id="159****5620",
        fund_change="Y" if fund_change else "N",
        # refund_fee: what the trade has had refunded in all; send_back_fee: this refund's own amount
        refund_fee=alipay.yuan(trade.refunded),
        send_back_fee=alipay.yuan(refund.amount),
        gmt_refund_pay=alipay.china_time(refund.created_at),
        buyer_user_id="2088101117955611",
    )


def alipay_refund_query(trade: Trade, refund: Refund | None, out_request_no: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "out_request_no": out_request_no,
        "total_amount": alipay.yuan(trade.total),
    }
    # an unknown (or unsuccessful) refund is answered 10000 without refund_status, as Alipay does
    if refund is not None and refund.status == SUCCESS:
        fields.update(
            refund_amount=alipay.yuan(refund.amount),
            refund_status="REFUND_SUCCESS",
            gmt_refund_pay=alipay.china_time(refund.success_at or refund.created_at),
        )
    return alipay.node(alipay.SUCCESS, **fields)


def alipay_trade(trade: Trade) -> dict[str, Any]:
    return alipay.node(
        alipay.SUCCESS,
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        trade_status="TRADE_SUCCESS",
        total_amount=alipay.yuan(trade.total),
        send_pay_date=alipay.china_time(trade.paid_at),
        buyer_logon_id="159****5620",
    )


def alipay_payment_notify(
    trade: Trade, credentials: Credentials, notify_id: str, now: datetime
) -> dict[str, str]:
    """The fields of the asynchronous notify of a paid trade (signed at each delivery)."""
    return {
        "notify_time": alipay.china_time(now),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": credentials.alipay_app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": alipay.yuan(trade.total),
        "receipt_amount": alipay.yuan(trade.total),
        "buyer_pay_amount": alipay.yuan(trade.total),
        "gmt_create": alipay.china_time(trade.paid_at),
        "gmt_payment": alipay.china_time(trade.paid_at),
        "seller_id": "2088102146225135",
        "buyer_id": "2088101117955611",
        "subject": trade.out_trade_no,
    }
