"""The projector's batches: several events of one order or product written together end where
applying them one at a time would, and nothing delivered again or late changes them.

The events are published straight onto orders.events and inventory.events for orders and
products of their own (no saga behind them), all in one go: a key's records share a
partition and one produce request, so the projector fetches them into one batch.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from conveyor.domain import messages as m
from conveyor.domain.codec import EncodedRecord, decode_dead_letter, encode
from conveyor.domain.topics import DEFAULT_PARTITIONS, topic_for
from conveyor.infra import readmodel
from tests.support.shop import Shop, key_in_partition_of, read_all
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e

PRICE = Decimal("10.00")
Published = tuple[str, EncodedRecord]


class Timeline:
    """Events as records, each a second after the one before (so each has its own time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.times: dict[m.Message, datetime] = {}

    def record(self, message: m.Message) -> Published:
        self.now += timedelta(seconds=1)
        self.times[message] = self.now
        topic = topic_for(type(message)).name
        return topic, encode(topic, message, occurred_at=self.now)

    def records(self, *messages: m.Message) -> list[Published]:
        return [self.record(message) for message in messages]


async def publish_together(bootstrap: str, records: Sequence[Published]) -> None:
    """Send ``records`` in one go, as they are (a record sent twice keeps its event id)."""
    # Within one linger the records of a partition travel in one produce request.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, record.value, key=record.key, headers=list(record.headers))
            for topic, record in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def order_placed(lines: int = 2) -> m.OrderPlaced:
    order_id = uuid.uuid4()
    items = tuple(
        m.OrderLine(product_id=uuid.uuid4(), quantity=n, unit_price=PRICE, subtotal=PRICE * n)
        for n in range(1, lines + 1)
    )
    return m.OrderPlaced(
        order_id=order_id,
        user_id=uuid.uuid4(),
        customer_email=f"customer-{order_id.hex[:8]}@example.com",
        items=items,
        currency="EUR",
        total=sum((item.subtotal for item in items), start=Decimal(0)),
    )


def confirmed(order: m.OrderPlaced) -> m.OrderConfirmed:
    return m.OrderConfirmed(
        order_id=order.order_id, user_id=order.user_id, payment_id=f"pay_{order.order_id.hex}"
    )


def rejected(order: m.OrderPlaced) -> m.OrderRejected:
    return m.OrderRejected(
        order_id=order.order_id, user_id=order.user_id, reason=m.RejectionReason.OUT_OF_STOCK
    )


def cancelled(order: m.OrderPlaced) -> m.OrderCancelled:
    return m.OrderCancelled(order_id=order.order_id, user_id=order.user_id)


def stock_changed(product: UUID, version: int) -> m.StockChanged:
    # Figures that differ by version, so the row tells which version it holds.
    return m.StockChanged(
        product_id=product, version=version, available=100 - version, reserved=version, sold=0,
        cause="test",
    )  # fmt: skip


async def order_read_model(shop: Shop, cache: aioredis.Redis, order_id: UUID) -> dict[str, Any]:
    """Everything the projector writes of an order, in PostgreSQL and Redis."""
    order = await shop.pool.fetchrow(
        "SELECT status, reason, total, idempotency_key, updated_at FROM orders WHERE id = $1",
        order_id,
    )
    items = await shop.pool.fetch(
        "SELECT product_id, quantity, price, subtotal FROM order_items WHERE order_id = $1 "
        "ORDER BY product_id",
        order_id,
    )
    payment = await shop.pool.fetchrow(
        "SELECT payment_id, status, amount, updated_at FROM payments WHERE order_id = $1",
        order_id,
    )
    return {
        "order": None if order is None else dict(order),
        "items": [dict(item) for item in items],
        "payment": None if payment is None else dict(payment),
        "cached": await cache.hgetall(readmodel.order_status_key(order_id)),
    }


async def stock_read_model(shop: Shop, cache: aioredis.Redis, product: UUID) -> dict[str, Any]:
    row = await shop.pool.fetchrow(
        "SELECT available, reserved, sold, version, last_event_id FROM stock WHERE product_id = $1",
        product,
    )
    return {
        "row": None if row is None else dict(row),
        "cached": await cache.hgetall(readmodel.stock_key(product)),
    }


async def wait_stock_version(shop: Shop, product: UUID, version: int, within: float = 60) -> None:

    async def stored_version() -> int | None:
        stored: int | None = await shop.pool.fetchval(
            "SELECT version FROM stock WHERE product_id = $1", product
        )
        return stored

    await eventually_async(
        stored_version,
        f"the stock of {product} is at version {version}",
        until=lambda stored: stored == version,
        within=within,
        interval=0.1,
    )


async def announcements(pubsub: Any, until_status: str, within: float = 60) -> list[Any]:
    """What the subscription heard, up to the first announcement of ``until_status``."""
    heard: list[Any] = []

    async def listen() -> list[Any]:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            heard.append(json.loads(message["data"]))
        return heard

    return await eventually_async(
        listen,
        f"{until_status} announced",
        until=lambda heard: bool(heard) and heard[-1]["status"] == until_status,
        within=within,
        # Each read waits up to a second for the next message.
        interval=0,
    )


def cached_status(order_id: UUID, status: str, reason: str, at: datetime) -> dict[str, str]:
    return {
        "order_id": str(order_id),
        "status": status,
        "reason": reason,
        "updated_at": at.isoformat(),
    }


async def test_several_events_of_an_order_in_one_batch_end_as_one_by_one(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    timeline = Timeline()
    refunded, cancelled_first, rejected_first, paid = (order_placed() for _ in range(4))
    records = [
        *timeline.records(refunded, confirmed(refunded), cancelled(refunded)),
        # The late OrderConfirmed comes after the order was cancelled: no step forward.
        *timeline.records(cancelled_first, cancelled(cancelled_first), confirmed(cancelled_first)),
        *timeline.records(rejected_first, rejected(rejected_first), cancelled(rejected_first)),
        *timeline.records(paid, confirmed(paid)),
    ]
    pubsub = cache.pubsub()
    await pubsub.subscribe(readmodel.order_status_channel(refunded.order_id))
    try:
        await publish_together(stack.urls.kafka_bootstrap_servers, records)

        heard = await announcements(pubsub, "cancelled")
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]

    # What each order's events make of it one by one: status, reason, time of the last step.
    final = {
        refunded: ("cancelled", None, timeline.times[cancelled(refunded)]),
        cancelled_first: ("cancelled", None, timeline.times[cancelled(cancelled_first)]),
        rejected_first: ("rejected", "out_of_stock", timeline.times[rejected(rejected_first)]),
        paid: ("confirmed", None, timeline.times[confirmed(paid)]),
    }
    for order, (status, reason, updated_at) in final.items():
        await shop.wait_status(order.order_id, {status})
        model = await order_read_model(shop, cache, order.order_id)
        assert model["order"] == {
            "status": status,
            "reason": reason,
            "total": order.total,
            "idempotency_key": f"order:{order.order_id}",
            "updated_at": updated_at,
        }
        assert model["items"] == [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "price": line.unit_price,
                "subtotal": line.subtotal,
            }
            for line in sorted(order.items, key=lambda line: line.product_id)
        ]
        assert model["cached"] == cached_status(order.order_id, status, reason or "", updated_at)
    refund = (await order_read_model(shop, cache, refunded.order_id))["payment"]
    assert refund == {
        "payment_id": confirmed(refunded).payment_id,
        "status": "refunded",
        "amount": refunded.total,
        "updated_at": timeline.times[cancelled(refunded)],
    }
    payment = (await order_read_model(shop, cache, paid.order_id))["payment"]
    assert (payment["status"], payment["amount"]) == ("authorized", paid.total)
    for never_paid in (cancelled_first, rejected_first):
        assert (await order_read_model(shop, cache, never_paid.order_id))["payment"] is None
    # The last announcement is the final status, as the hash holds it.
    assert heard[-1] == cached_status(
        refunded.order_id, "cancelled", "", timeline.times[cancelled(refunded)]
    )


async def test_a_batch_delivered_again_and_late_events_change_nothing(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    timeline = Timeline()
    order = order_placed()
    product = uuid.uuid4()
    records = timeline.records(
        order, confirmed(order), cancelled(order), *(stock_changed(product, v) for v in (1, 2))
    )
    await publish_together(bootstrap, records)
    await shop.wait_status(order.order_id, {"cancelled"})
    await wait_stock_version(shop, product, 2)
    await shop.drain()
    order_before = await order_read_model(shop, cache, order.order_id)
    stock_before = await stock_read_model(shop, cache, product)
    pubsub = cache.pubsub()
    await pubsub.subscribe(readmodel.order_status_channel(order.order_id))
    try:
        # The same records again, and events of their own that come too late: the order was
        # cancelled, the stock is past version 1.
        late = Timeline().records(
            order, confirmed(order), rejected(order), cancelled(order), stock_changed(product, 1)
        )
        await publish_together(bootstrap, [*records, *late])
        await shop.drain()

        assert await order_read_model(shop, cache, order.order_id) == order_before
        assert await stock_read_model(shop, cache, product) == stock_before
        # Announcements go out before the offsets are committed: one would be here by now.
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is None
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_several_figures_of_a_product_in_one_batch_leave_the_newest(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    product = uuid.uuid4()
    timeline = Timeline()
    records = timeline.records(*(stock_changed(product, version) for version in (1, 4, 2, 3)))

    await publish_together(stack.urls.kafka_bootstrap_servers, records)

    await wait_stock_version(shop, product, 4)
    await shop.drain()
    newest = stock_changed(product, 4)
    assert await stock_read_model(shop, cache, product) == {
        "row": {
            "available": newest.available,
            "reserved": newest.reserved,
            "sold": newest.sold,
            "version": 4,
            "last_event_id": records[1][1].event_id,
        },
        "cached": {
            "available": str(newest.available),
            "reserved": str(newest.reserved),
            "sold": str(newest.sold),
            "version": "4",
        },
    }


async def test_the_edges_own_order_row_is_moved_and_kept(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    order = order_placed()
    # As the edge writes it before publishing: the client's key, one line of its own.
    [line] = order.items[:1]
    await shop.pool.execute(
        "INSERT INTO orders (id, user_id, idempotency_key, request_fingerprint, status, total, "
        "currency) VALUES ($1, $2, 'client-key', 'fingerprint', 'pending', $3, 'EUR')",
        order.order_id,
        order.user_id,
        order.total,
    )
    await shop.pool.execute(
        "INSERT INTO order_items (order_id, product_id, quantity, price, subtotal) "
        "VALUES ($1, $2, $3, $4, $5)",
        order.order_id,
        line.product_id,
        line.quantity,
        line.unit_price,
        line.subtotal,
    )
    edge_row = await order_read_model(shop, cache, order.order_id)

    await publish_together(
        stack.urls.kafka_bootstrap_servers, Timeline().records(order, confirmed(order))
    )

    await shop.wait_status(order.order_id, {"confirmed"})
    model = await order_read_model(shop, cache, order.order_id)
    assert model["order"]["idempotency_key"] == "client-key"
    assert model["items"] == edge_row["items"]
    assert (model["payment"]["status"], model["payment"]["amount"]) == ("authorized", order.total)
    assert model["cached"]["status"] == "confirmed"


async def test_an_order_the_edge_left_unannounced_is_marked_announced_once_placed(
    shop: Shop, stack: RunningStack
) -> None:
    """An edge that died after Kafka had the order but before it marked the row leaves it
    unannounced; once the projector sees the placement the edge never withdraws it."""
    order = order_placed(lines=1)
    await shop.pool.execute(
        "INSERT INTO orders (id, user_id, idempotency_key, request_fingerprint, status, total, "
        "currency, announced) VALUES ($1, $2, 'client-key', 'fingerprint', 'pending', $3, "
        "'EUR', false)",
        order.order_id,
        order.user_id,
        order.total,
    )

    await publish_together(stack.urls.kafka_bootstrap_servers, Timeline().records(order))

    async def announced() -> bool | None:
        marked: bool | None = await shop.pool.fetchval(
            "SELECT announced FROM orders WHERE id = $1", order.order_id
        )
        return marked

    assert await eventually_async(announced, "the edge's row marked announced")
    assert (
        await shop.pool.fetchval("SELECT status FROM orders WHERE id = $1", order.order_id)
        == "pending"
    )


async def test_events_before_the_orders_first_placement_find_no_row(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    """One by one, an OrderConfirmed ahead of the OrderPlaced that makes the row moves
    nothing; in one batch neither."""
    order = order_placed()

    await publish_together(
        stack.urls.kafka_bootstrap_servers,
        Timeline().records(confirmed(order), order, rejected(order)),
    )

    await shop.wait_status(order.order_id)
    await shop.drain()
    model = await order_read_model(shop, cache, order.order_id)
    assert (model["order"]["status"], model["order"]["reason"]) == ("rejected", "out_of_stock")
    assert model["payment"] is None


async def test_a_figure_postgresql_refuses_is_dead_lettered_alone(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    refused = uuid.uuid4()
    # Same partition, one produce request: the refused record is in the others' batch.
    accepted = key_in_partition_of(refused, DEFAULT_PARTITIONS)
    records = Timeline().records(
        stock_changed(accepted, 1), stock_changed(refused, 1), stock_changed(accepted, 2)
    )
    # Not VALID: only rows written from now on are checked, and only the one product fails.
    constraint = f"refuses_{refused.hex}"
    await shop.pool.execute(
        f"ALTER TABLE stock ADD CONSTRAINT {constraint} CHECK (product_id <> '{refused}') NOT VALID"
    )
    try:
        await publish_together(bootstrap, records)

        await wait_stock_version(shop, accepted, 2)
        await shop.drain()
    finally:
        await shop.pool.execute(f"ALTER TABLE stock DROP CONSTRAINT {constraint}")
    assert (await stock_read_model(shop, cache, refused)) == {"row": None, "cached": {}}
    assert (await stock_read_model(shop, cache, accepted))["cached"]["version"] == "2"
    letters = [
        letter
        for _, value in await read_all(bootstrap, "inventory.events.dlq")
        if (letter := decode_dead_letter(value)).original_value in {r.value for _, r in records}
    ]
    assert [letter.original_value for letter in letters] == [records[1][1].value]
    assert constraint in letters[0].error


async def test_a_figure_beyond_its_column_is_dead_lettered_not_retried_forever(
    shop: Shop, stack: RunningStack, cache: aioredis.Redis
) -> None:
    """A count the message allows but PostgreSQL's integer column cannot hold fails the same
    way however often it is tried: it goes to the DLQ (not retried as if PostgreSQL were
    away) and the rest of its batch is written."""
    bootstrap = stack.urls.kafka_bootstrap_servers
    too_large = uuid.uuid4()
    accepted = key_in_partition_of(too_large, DEFAULT_PARTITIONS)
    beyond_int4 = stock_changed(too_large, 1).model_copy(update={"available": 2**31})
    records = Timeline().records(
        stock_changed(accepted, 1), beyond_int4, stock_changed(accepted, 2)
    )

    await publish_together(bootstrap, records)

    await wait_stock_version(shop, accepted, 2)
    await shop.drain()
    assert (await stock_read_model(shop, cache, too_large)) == {"row": None, "cached": {}}
    letters = [
        letter
        for _, value in await read_all(bootstrap, "inventory.events.dlq")
        if (letter := decode_dead_letter(value)).original_value in {r.value for _, r in records}
    ]
    assert [letter.original_value for letter in letters] == [records[1][1].value]
