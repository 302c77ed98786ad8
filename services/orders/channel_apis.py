"""The marketplaces' order APIs as orders calls them (the channel sandbox locally): OAuth refresh and the
incremental order query by modified time, one page per call, signed each platform's way.

- Taobao (TOP): `POST {api_url}/token` (grant_type=refresh_token) and `POST {api_url}/router/rest`
  taobao.trades.sold.increment.get, MD5-signed; `session` is the access token.
- Douyin shop: `POST {api_url}/token/refresh` and `POST {api_url}/order/searchList`, HMAC-SHA256-signed.

Every failure is a `ChannelApiError` with the platform's code (or `timeout`, `network`, `bad_answer`);
`token` says the platform refused the token itself (TOP 27, Douyin 30001-30003, OAuth invalid_grant).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp

from services.orders.domain.channel_health import Connection
from services.orders.handlers.channel_health import ChannelApiError, Page, Tokens

PAGE_SIZE = 100
BEIJING = timezone(timedelta(hours=8))
TOP_TIME = "%Y-%m-%d %H:%M:%S"
TAOBAO_TOKEN_CODES = frozenset({"27"})
DOUYIN_TOKEN_CODES = frozenset({"30001", "30002", "30003"})
DOUYIN_SUCCESS = 10000


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TOP_TIME)


def taobao_sign(params: dict[str, str], secret: str) -> str:
    joined = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign")
    return hashlib.md5((secret + joined + secret).encode()).hexdigest().upper()


def douyin_sign(app_key: str, secret: str, method: str, param_json: str, timestamp: str) -> str:
    text = f"{secret}app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v2{secret}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


class ChannelApis:
    """One HTTP session for every channel's API; each call names the connection it is made for."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, url: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with self._http().post(url, **kwargs) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            raise ChannelApiError("timeout", f"no answer from {url.split('?', 1)[0]}") from None
        except aiohttp.ClientError as error:
            raise ChannelApiError(
                "network", f"{type(error).__name__} calling {url.split('?', 1)[0]}"
            ) from None
        try:
            return status, json.loads(body)
        except ValueError:
            raise ChannelApiError("bad_answer", f"HTTP {status}, not JSON") from None

    async def refresh(self, connection: Connection) -> Tokens:
        if connection.channel == "TAOBAO":
            return await self._taobao_refresh(connection)
        return await self._douyin_refresh(connection)

    async def orders(self, connection: Connection, start: datetime, end: datetime, page: int) -> Page:
        """Page `page` (from 0) of the orders modified between `start` and `end`, oldest change first."""
        if connection.channel == "TAOBAO":
            return await self._taobao_orders(connection, start, end, page)
        return await self._douyin_orders(connection, start, end, page)

    # Taobao

    async def _taobao_refresh(self, c: Connection) -> Tokens:
        form = {
            "grant_type": "refresh_token",
            "client_id": c.app_key,
            "client_secret": c.app_secret,
            "refresh_token": c.refresh_token,
        }
        status, body = await self._post(f"{c.api_url}/token", data=form)
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", f"http_{status}") if isinstance(body, dict) else f"http_{status}"
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            raise ChannelApiError(str(error), str(detail), token=error in ("invalid_grant", "invalid_client"))
        return Tokens(str(body["access_token"]), str(body.get("refresh_token", "")), int(body["expires_in"]))

    async def _taobao_orders(self, c: Connection, start: datetime, end: datetime, page: int) -> Page:
        params = {
            "method": "taobao.trades.sold.increment.get",
            "app_key": c.app_key,
            "session": c.access_token,
            "timestamp": _beijing(datetime.now(UTC)),
            "format": "json",
            "v": "2.0",
            "sign_method": "md5",
            "fields": "tid,status,modified,orders",
            "start_modified": _beijing(start),
            "end_modified": _beijing(end),
            "page_no": str(page + 1),
            "page_size": str(PAGE_SIZE),
            "use_has_next": "true",
        }
        params["sign"] = taobao_sign(params, c.app_secret)
        _, body = await self._post(f"{c.api_url}/router/rest", data=params)
        if not isinstance(body, dict):
            raise ChannelApiError("bad_answer", "not a JSON object")
        if "error_response" in body:
            node = body["error_response"]
            code = str(node.get("code", ""))
            message = f"{node.get('msg', '')} {node.get('sub_code', '')}".strip()
            raise ChannelApiError(code, message, token=code in TAOBAO_TOKEN_CODES)
        node = body.get("trades_sold_increment_get_response")
        if not isinstance(node, dict):
            raise ChannelApiError("bad_answer", "no trades_sold_increment_get_response")
        trades = (node.get("trades") or {}).get("trade") or []
        return Page([trade for trade in trades if isinstance(trade, dict)], bool(node.get("has_next")))

    # Douyin

    async def _douyin_call(self, c: Connection, method: str, params: dict[str, Any], token: bool) -> Any:
        param_json = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        timestamp = _beijing(datetime.now(UTC))
        query = {
            "app_key": c.app_key,
            "method": method,
            "v": "2",
            "timestamp": timestamp,
            "sign_method": "hmac-sha256",
            "sign": douyin_sign(c.app_key, c.app_secret, method, param_json, timestamp),
        }
        if token:
            query["access_token"] = c.access_token
        path = "/" + method.replace(".", "/")
        _, body = await self._post(
            f"{c.api_url}{path}",
            params=query,
            data=param_json.encode(),
            headers={"Content-Type": "application/json"},
        )
        if not isinstance(body, dict):
            raise ChannelApiError("bad_answer", "not a JSON object")
        code = body.get("code")
        if code != DOUYIN_SUCCESS:
            text = str(code)
            message = f"{body.get('msg', '')} {body.get('sub_code', '')}".strip()
            raise ChannelApiError(text, message, token=text in DOUYIN_TOKEN_CODES)
        return body.get("data") or {}

    async def _douyin_refresh(self, c: Connection) -> Tokens:
        data = await self._douyin_call(
            c, "token.refresh", {"grant_type": "refresh_token", "refresh_token": c.refresh_token}, False
        )
        try:
            return Tokens(
                str(data["access_token"]), str(data.get("refresh_token", "")), int(data["expires_in"])
            )
        except (KeyError, TypeError, ValueError):
            raise ChannelApiError("bad_answer", "token.refresh answered no token") from None

    async def _douyin_orders(self, c: Connection, start: datetime, end: datetime, page: int) -> Page:
        params = {
            "update_time_start": int(start.timestamp()),
            "update_time_end": int(end.timestamp()),
            "page": page,
            "size": PAGE_SIZE,
            "order_by": "update_time",
            "order_asc": True,
        }
        data = await self._douyin_call(c, "order.searchList", params, True)
        orders = [order for order in data.get("shop_order_list") or [] if isinstance(order, dict)]
        total = int(data.get("total") or 0)
        return Page(orders, (page + 1) * PAGE_SIZE < total)
