"""Orders' tables and repository (SQLAlchemy Core on asyncpg)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain.model import Address, Channel, Order, OrderLine, OrderStatus

metadata = MetaData()

orders_table = Table(
    "orders",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("channel_order_id", String(64), nullable=False),
    Column("buyer_id", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("shipping_fee_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("shipping_address", JSONB, nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("channel", "channel_order_id", name="orders_channel_order_unique"),
)

order_lines_table = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)


class OrderRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add_if_absent(self, order: Order) -> bool:
        """Insert unless the channel order exists; the unique constraint answers, not a prior read."""
        inserted = await self.conn.execute(
            insert(orders_table)
            .values(
                order_id=order.order_id,
                channel=order.channel.value,
                channel_order_id=order.channel_order_id,
                buyer_id=order.buyer_id,
                currency=order.currency,
                status=order.status.value,
                shipping_fee_minor=order.shipping_fee_minor,
                total_minor=order.total_minor,
                shipping_address=asdict(order.shipping_address),
                placed_at=order.placed_at,
                created_at=order.created_at,
                updated_at=order.updated_at,
            )
            .on_conflict_do_nothing(constraint="orders_channel_order_unique")
            .returning(orders_table.c.order_id)
        )
        if inserted.first() is None:
            return False
        await self.conn.execute(
            order_lines_table.insert(),
            [
                {"order_id": order.order_id, "line_no": n, **asdict(line)}
                for n, line in enumerate(order.lines)
            ],
        )
        return True

    async def get(self, order_id: str) -> Order | None:
        row = (
            await self.conn.execute(select(orders_table).where(orders_table.c.order_id == order_id))
        ).first()
        return None if row is None else await self._load(row._mapping)

    async def get_by_channel(self, channel: Channel, channel_order_id: str) -> Order | None:
        row = (
            await self.conn.execute(
                select(orders_table).where(
                    orders_table.c.channel == channel.value,
                    orders_table.c.channel_order_id == channel_order_id,
                )
            )
        ).first()
        return None if row is None else await self._load(row._mapping)

    async def _load(self, row: Any) -> Order:
        lines = (
            await self.conn.execute(
                select(
                    order_lines_table.c.sku,
                    order_lines_table.c.title,
                    order_lines_table.c.quantity,
                    order_lines_table.c.unit_price_minor,
                )
                .where(order_lines_table.c.order_id == row["order_id"])
                .order_by(order_lines_table.c.line_no)
            )
        ).all()
        return Order(
            order_id=row["order_id"],
            channel=Channel(row["channel"]),
            channel_order_id=row["channel_order_id"],
            buyer_id=row["buyer_id"],
            currency=row["currency"],
            lines=tuple(OrderLine(**line._mapping) for line in lines),
            shipping_address=Address(**row["shipping_address"]),
            shipping_fee_minor=row["shipping_fee_minor"],
            placed_at=row["placed_at"],
            status=OrderStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
