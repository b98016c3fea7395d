"""Drives the processors the way the edge would, and reads what they made of it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import asyncpg

from conveyor.devstack.smtp_sink import ReceivedMail, read_mailbox
from conveyor.domain import messages as m
from conveyor.infra.kafka import consumer_group_lag
from conveyor.infra.publisher import Publisher
from conveyor.streams.runtime import PROCESSORS

UNIT_PRICE = Decimal("10.00")


@dataclass(frozen=True)
class StockFigures:
    available: int
    reserved: int
    sold: int


class Shop:
    def __init__(
        self, publisher: Publisher, pool: asyncpg.Pool, maildir: Path, bootstrap: str
    ) -> None:
        self.publisher = publisher
        self.pool = pool
        self.maildir = maildir
        self.bootstrap = bootstrap

    # -- commands ----------------------------------------------------------------------------

    async def add_product(self, stock: int) -> UUID:
        product = uuid.uuid4()
        await self.publisher.publish(
            m.UpsertProduct(
                product_id=product, sku=f"SKU-{product.hex[:8]}", name="Widget", initial_stock=stock
            )
        )
        await self.wait_stock(product, StockFigures(stock, 0, 0))
        return product

    def order(
        self, lines: list[tuple[UUID, int]], token: str = "tok_visa", email: str | None = None
    ) -> m.PlaceOrder:
        items = tuple(
            m.OrderLine(
                product_id=product,
                quantity=quantity,
                unit_price=UNIT_PRICE,
                subtotal=UNIT_PRICE * quantity,
            )
            for product, quantity in lines
        )
        order_id = uuid.uuid4()
        return m.PlaceOrder(
            order_id=order_id,
            user_id=uuid.uuid4(),
            customer_email=email or f"customer-{order_id.hex[:8]}@example.com",
            items=items,
            currency="EUR",
            total=sum((item.subtotal for item in items), start=Decimal(0)),
            payment_token=token,
        )

    async def place(self, lines: list[tuple[UUID, int]], token: str = "tok_visa") -> m.PlaceOrder:
        order = self.order(lines, token)
        await self.publisher.publish(order)
        return order

    async def cancel(self, order_id: UUID) -> None:
        await self.publisher.publish(m.CancelOrder(order_id=order_id, requested_by=uuid.uuid4()))

    # -- what came of it -----------------------------------------------------------------------

    async def order_row(self, order_id: UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT status, reason FROM orders WHERE id = $1", order_id)

    async def wait_status(
        self, order_id: UUID, wanted: set[str] | None = None, within: float = 90.0
    ) -> asyncpg.Record:
        """The order's row once its status is in ``wanted`` (default: any terminal one)."""
        wanted = wanted or {"confirmed", "rejected", "cancelled"}
        deadline = time.monotonic() + within
        while True:
            row = await self.order_row(order_id)
            if row is not None and row["status"] in wanted:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"order {order_id} is {None if row is None else row['status']} after "
                    f"{within} s, expected one of {sorted(wanted)}"
                )
            await asyncio.sleep(0.1)

    async def stock(self, product: UUID) -> StockFigures | None:
        row = await self.pool.fetchrow(
            "SELECT available, reserved, sold FROM stock WHERE product_id = $1", product
        )
        return None if row is None else StockFigures(row[0], row[1], row[2])

    async def wait_stock(
        self, product: UUID, wanted: StockFigures, within: float = 60.0
    ) -> StockFigures:
        deadline = time.monotonic() + within
        while True:
            figures = await self.stock(product)
            if figures == wanted:
                return figures
            if time.monotonic() > deadline:
                raise AssertionError(f"stock of {product} is {figures}, expected {wanted}")
            await asyncio.sleep(0.1)

    async def wait_notified(self, order_id: UUID, event: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while not await self.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE order_id = $1 AND event = $2",
            order_id,
            event,
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} notification for {order_id} after {within} s")
            await asyncio.sleep(0.1)

    def emails(self, order_id: UUID) -> list[ReceivedMail]:
        return [mail for mail in read_mailbox(self.maildir) if str(order_id) in mail.body]

    async def drain(self, within: float = 90.0) -> None:
        """Wait until every processor has committed everything on its topics."""
        deadline = time.monotonic() + within
        while True:
            lags = {
                name: sum((await consumer_group_lag(self.bootstrap, f"conveyor-{name}")).values())
                for name in PROCESSORS
            }
            if not any(lags.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"processors still behind after {within} s: {lags}")
            await asyncio.sleep(0.25)
