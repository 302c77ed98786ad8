"""One HTTP call to a provider, and what a failure to get an answer means: retryable, and whether the
provider may have carried the call out anyway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from services.aftersales.providers.ports import Provider, RetryableError


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    text: str


async def send(
    session: aiohttp.ClientSession,
    provider: Provider,
    method: str,
    url: str | URL,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    data: bytes | Mapping[str, str] | None = None,
) -> Reply:
    try:
        async with session.request(
            method,
            url,
            headers=dict(headers or {}),
            data=data if isinstance(data, bytes) or data is None else dict(data),
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            return Reply(response.status, response.headers, await response.text())
    except TimeoutError:
        raise RetryableError(provider, f"no answer within {seconds:g}s", uncertain=True) from None
    except aiohttp.ClientConnectorError as error:
        # never connected: nothing was sent
        raise RetryableError(
            provider, f"cannot connect: {error.os_error or error}", uncertain=False
        ) from None
    except aiohttp.ClientError as error:
        raise RetryableError(
            provider, f"connection lost before the answer: {error!r}"[:300], uncertain=True
        ) from None
