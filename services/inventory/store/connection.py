"""How a repository reaches the database: its unit of work's connection, checked out at first use."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

Connect = Callable[[], Awaitable[AsyncConnection]]
