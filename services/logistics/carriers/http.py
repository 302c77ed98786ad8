"""One form POST to a carrier, and what a failure to get an answer means: a carrier that is down (it
counts against the breaker) and whether the request may have been carried out anyway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp


class CarrierDown(Exception):
    """The carrier did not answer usefully (no answer, a dropped connection, its own server error):
    counts against its breaker. `uncertain`: the request may have been carried out."""

    def __init__(self, reason: str, uncertain: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.uncertain = uncertain


class RateLimited(Exception):
    """The carrier throttled the call (HTTP 429 or its limit code): retried later, and not held against
    its breaker (the carrier is up)."""


@dataclass(frozen=True)
class Reply:
    status: int
    text: str


async def post_form(
    session: aiohttp.ClientSession, url: str, form: Mapping[str, str], seconds: float
) -> Reply:
    try:
        async with session.post(
            url, data=dict(form), timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            return Reply(response.status, await response.text())
    except TimeoutError:
        raise CarrierDown(f"no answer within {seconds:g}s", uncertain=True) from None
    except aiohttp.ClientConnectorError as error:
        # never connected: nothing was sent
        raise CarrierDown(f"cannot connect: {error.os_error or error}") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as error:
        raise CarrierDown(f"connection lost before the answer: {error!r}"[:300], uncertain=True) from None
    except aiohttp.ClientError as error:
        raise CarrierDown(f"HTTP error: {error!r}"[:300], uncertain=True) from None
