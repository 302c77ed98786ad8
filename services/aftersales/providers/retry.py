"""Sending a refund again after a retryable failure: always the identical request, so the provider's
number-once rule makes the retry harmless."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.aftersales.providers.ports import RefundProvider, RefundRequest, RefundResult, RetryableError


async def refund_retrying(
    provider: RefundProvider,
    request: RefundRequest,
    attempts: int = 3,
    first_delay_seconds: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RefundResult:
    """Up to `attempts` calls with the same request, the delay doubling between them; the last
    RetryableError is raised when every attempt failed (the caller keeps the request and tries later)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return await provider.refund(request)
        except RetryableError:
            if attempt == attempts:
                raise
            await sleep(first_delay_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
