"""Drives the processors the way the edge would, and reads what they made of it (PostgreSQL,
Redis, the topics, the mail sink)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from conveyor.devstack.money import check_money
from conveyor.devstack.smtp_sink import ReceivedMail, read_mailbox
from conveyor.domain import messages as m
from conveyor.domain.codec import decode
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.infra import readmodel
from conveyor.infra.kafka import consumer_group_lag
from conveyor.infra.publisher import Publisher
from conveyor.infra.settings import ServiceUrls
from tests.support.waiting import eventually_async

UNIT_PRICE = Decimal("10.00")


@dataclass(frozen=True)
class StockFigures:
    available: int
    reserved: int
    sold: int


class Shop:
    def __init__(
        self,
        publisher: Publisher,
        pool: asyncpg.Pool,
        cache: aioredis.Redis,
        maildir: Path,
        bootstrap: str,
    ) -> None:
        self.publisher = publisher
        self.pool = pool
        self.cache = cache
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

    async def cancelled_and_declined(self, product: UUID) -> tuple[m.PlaceOrder, m.PlaceOrder]:
        """Two finished orders of ``product``: 2 units confirmed then cancelled, 1 declined."""
        confirmed = await self.place([(product, 2)])
        declined = await self.place([(product, 1)], token="tok_chargeDeclined")
        await self.wait_status(confirmed.order_id, {"confirmed"})
        await self.cancel(confirmed.order_id)
        await self.wait_status(confirmed.order_id, {"cancelled"})
        await self.wait_status(declined.order_id, {"rejected"})
        return confirmed, declined

    # -- what came of it -----------------------------------------------------------------------

    async def order_row(self, order_id: UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT status, reason FROM orders WHERE id = $1", order_id)

    async def wait_status(
        self, order_id: UUID, wanted: set[str] | None = None, within: float = 90.0
    ) -> asyncpg.Record:
        """The order's row once its status is in ``wanted`` (default: any terminal one)."""
        wanted = wanted or {"confirmed", "rejected", "cancelled"}

        async def history() -> str:
            return "its records:\n" + "\n".join(await self.order_history(order_id))

        return await eventually_async(
            lambda: self.order_row(order_id),
            f"order {order_id} has a status in {sorted(wanted)}",
            until=lambda row: row is not None and row["status"] in wanted,
            within=within,
            interval=0.1,
            context=history,
        )

    async def stock(self, product: UUID) -> StockFigures | None:
        row = await self.pool.fetchrow(
            "SELECT available, reserved, sold FROM stock WHERE product_id = $1", product
        )
        return None if row is None else StockFigures(row[0], row[1], row[2])

    async def cached_stock(self, product: UUID) -> StockFigures | None:
        """The product's figures in Redis, where the edge reads them."""
        cached = await self.cache.hgetall(readmodel.stock_key(product))
        if not cached:
            return None
        return StockFigures(int(cached["available"]), int(cached["reserved"]), int(cached["sold"]))

    async def wait_stock(
        self, product: UUID, wanted: StockFigures, within: float = 60.0
    ) -> StockFigures:
        return await eventually_async(
            lambda: self.stock(product),
            f"the stock of {product} is {wanted}",
            until=lambda figures: figures == wanted,
            within=within,
            interval=0.1,
        )

    async def wait_notified(self, order_id: UUID, event: str, within: float = 60.0) -> None:
        """Until the order's email for ``event`` is recorded sent (not only claimed)."""

        async def sent() -> int:
            count: int = await self.pool.fetchval(
                "SELECT count(*) FROM notifications "
                "WHERE order_id = $1 AND event = $2 AND sent_at IS NOT NULL",
                order_id,
                event,
            )
            return count

        await eventually_async(
            sent, f"the {event} email of {order_id} recorded sent", within=within, interval=0.1
        )

    def emails(self, order_id: UUID) -> list[ReceivedMail]:
        return [mail for mail in read_mailbox(self.maildir) if str(order_id) in mail.body]

    async def order_history(self, order_id: UUID) -> list[str]:
        """Every record that mentions the order, topic by topic, for a failure's message."""
        needle = str(order_id).encode()
        lines = []
        for topic in (
            "orders.commands", "orders.replies", "inventory.commands", "payments.commands",
            "orders.events", "inventory.events", "notifications.events",
        ):  # fmt: skip
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                while batch := await consumer.getmany(timeout_ms=1000):
                    for records in batch.values():
                        for r in records:
                            if r.value is not None and needle in r.value:
                                lines.append(f"{topic}[{r.partition}]@{r.offset} {r.value[:300]!r}")
            finally:
                await consumer.stop()
        return lines

    async def last_stock_events(self, products: set[UUID]) -> dict[UUID, StockFigures]:
        """The newest StockChanged the inventory table published for each product."""
        consumer = AIOKafkaConsumer(
            "inventory.events",
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        newest: dict[UUID, tuple[int, StockFigures]] = {}
        await consumer.start()
        try:
            while batch := await consumer.getmany(timeout_ms=1500):
                for records in batch.values():
                    for record in records:
                        change = decode("inventory.events", record.key, record.value).payload
                        assert isinstance(change, m.StockChanged)
                        if (
                            change.product_id in products
                            and change.version > newest.get(change.product_id, (0, None))[0]
                        ):
                            newest[change.product_id] = (
                                change.version,
                                StockFigures(change.available, change.reserved, change.sold),
                            )
        finally:
            await consumer.stop()
        return {product: figures for product, (_, figures) in newest.items()}

    async def drain(self, within: float = 90.0) -> None:
        """Wait until every processor has committed everything on its topics."""

        async def behind() -> dict[str, dict[str, int]]:
            return {
                name: {
                    f"{topic}[{partition}]": records
                    for (topic, partition), records in (
                        await consumer_group_lag(self.bootstrap, f"conveyor-{name}")
                    ).items()
                    if records
                }
                for name in PROCESSOR_NAMES
            }

        await eventually_async(
            behind,
            "every processor has committed everything on its topics",
            until=lambda lags: not any(lags.values()),
            within=within,
        )


async def assert_saga_invariants(
    shop: Shop, initial: dict[UUID, int], orders: list[m.PlaceOrder], *, exact: bool = True
) -> None:
    """What the saga promises once every order is terminal and the processors are drained.

    - every order has exactly one terminal status, and one email per terminal event;
    - per product: initial = available + reserved + sold, nothing reserved is left over,
      sold is exactly what the confirmed orders bought, available is never negative;
    - the read models (PostgreSQL, Redis) equal the inventory table's last published state.
    """
    statuses = {
        order.order_id: (await shop.wait_status(order.order_id))["status"] for order in orders
    }
    await shop.drain()
    sold: dict[UUID, int] = dict.fromkeys(initial, 0)
    for order in orders:
        if statuses[order.order_id] == "confirmed":
            for line in order.items:
                sold[line.product_id] += line.quantity
    for product, units in initial.items():
        figures = await shop.stock(product)
        assert figures is not None
        assert figures == StockFigures(
            available=units - sold[product], reserved=0, sold=sold[product]
        )
        assert figures.available >= 0
    last_published = await shop.last_stock_events(set(initial))
    for product in initial:
        assert last_published[product] == await shop.stock(product)
        assert last_published[product] == await shop.cached_stock(product)
    for order in orders:
        event = {"confirmed": "OrderConfirmed", "rejected": "OrderRejected"}[
            statuses[order.order_id]
        ]
        await shop.wait_notified(order.order_id, event)
    # One email per terminal event, told apart by its Message-ID. A processor killed
    # between the mail server's acceptance and the record of the email as sent sends that
    # same message again (same Message-ID, which mail clients show once), so `exact` is for
    # runs without kills.
    received: dict[UUID, list[str]] = {order.order_id: [] for order in orders}
    for mail in read_mailbox(shop.maildir):
        for order in orders:
            if str(order.order_id) in mail.body:
                received[order.order_id].append(mail.message_id)
    distinct = {order_id: len(set(ids)) for order_id, ids in received.items()}
    assert distinct == dict.fromkeys(received, 1), {
        k: v for k, v in received.items() if len(v) != 1
    }
    if exact:
        repeated = {order_id: ids for order_id, ids in received.items() if len(ids) != 1}
        assert not repeated, f"emails delivered more than once: {repeated}"


async def read_records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record ``topic`` holds now, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                return records
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    return [(r.key or b"", r.value or b"") for r in await read_records(bootstrap, topic)]


async def replay(
    bootstrap: str, topics: list[str], wanted: Callable[[bytes, bytes], bool]
) -> list[tuple[bytes, bytes]]:
    """Produce again, unchanged, every record of ``topics`` that ``wanted(key, value)`` picks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    replayed: list[tuple[bytes, bytes]] = []
    try:
        for topic in topics:
            for key, value in await read_all(bootstrap, topic):
                if wanted(key, value):
                    await producer.send_and_wait(topic, value, key=key)
                    replayed.append((key, value))
    finally:
        await producer.stop()
    return replayed


def key_in_partition_of(key: UUID, partitions: int) -> UUID:
    """Another key whose records go to ``key``'s partition of a topic of ``partitions``."""
    choose = DefaultPartitioner()
    wanted = choose(str(key).encode(), list(range(partitions)), list(range(partitions)))
    while True:
        other = uuid.uuid4()
        if choose(str(other).encode(), list(range(partitions)), list(range(partitions))) == wanted:
            return other


async def assert_money_settled(urls: ServiceUrls, orders: list[m.PlaceOrder]) -> None:
    """For every order, the gateway keeps its total if it is confirmed, and nothing otherwise;
    and none is pending."""
    checked = await check_money(urls, order_ids=[order.order_id for order in orders])
    assert checked.settled, str(checked)
    assert checked.orders_checked == len(orders)
