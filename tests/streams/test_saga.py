"""The order saga end to end: the real processors on real Kafka, PostgreSQL, Redis, the
SMTP sink and the payment sandbox, checked through the read models and the mailbox."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from conveyor.domain.codec import decode_dead_letter
from conveyor.infra import readmodel
from tests.support.shop import Shop, StockFigures, read_all, replay
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.e2e


async def test_an_order_in_stock_and_paid_is_confirmed_and_its_stock_sold(shop: Shop) -> None:
    keyboard, mouse = await shop.add_product(5), await shop.add_product(3)

    order = await shop.place([(keyboard, 2), (mouse, 1)])

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("confirmed", None)
    await shop.wait_stock(keyboard, StockFigures(available=3, reserved=0, sold=2))
    await shop.wait_stock(mouse, StockFigures(available=2, reserved=0, sold=1))
    await shop.wait_notified(order.order_id, "OrderConfirmed")
    [email] = shop.emails(order.order_id)
    assert email.envelope_to == (order.customer_email,)
    assert "confirmed" in email.subject


async def test_an_order_beyond_the_stock_is_rejected_and_holds_nothing(shop: Shop) -> None:
    plenty, scarce = await shop.add_product(10), await shop.add_product(1)

    order = await shop.place([(plenty, 4), (scarce, 2)])

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "out_of_stock")
    # The line that was reserved is given back before the order is called rejected.
    assert await shop.stock(plenty) == StockFigures(available=10, reserved=0, sold=0)
    assert await shop.stock(scarce) == StockFigures(available=1, reserved=0, sold=0)
    await shop.wait_notified(order.order_id, "OrderRejected")
    [email] = shop.emails(order.order_id)
    assert "out of stock" in email.body


async def test_a_declined_card_rejects_the_order_and_returns_its_stock(shop: Shop) -> None:
    product = await shop.add_product(4)

    order = await shop.place([(product, 3)], token="tok_chargeDeclined")

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "payment_declined")
    assert await shop.stock(product) == StockFigures(available=4, reserved=0, sold=0)


async def test_a_gateway_that_never_answers_ends_in_payment_unavailable(shop: Shop) -> None:
    product = await shop.add_product(2)

    order = await shop.place([(product, 1)], token="tok_timeout")

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "payment_unavailable")
    assert await shop.stock(product) == StockFigures(available=2, reserved=0, sold=0)


async def test_cancelling_a_confirmed_order_refunds_it_and_returns_the_stock(
    shop: Shop, stack: RunningStack
) -> None:
    product = await shop.add_product(5)
    order = await shop.place([(product, 2)])
    await shop.wait_status(order.order_id, {"confirmed"})

    await shop.cancel(order.order_id)

    await shop.wait_status(order.order_id, {"cancelled"})
    await shop.wait_stock(product, StockFigures(available=5, reserved=0, sold=0))
    payment = await shop.pool.fetchrow(
        "SELECT payment_id, status FROM payments WHERE order_id = $1", order.order_id
    )
    assert payment is not None
    assert payment["status"] == "refunded"
    await shop.wait_notified(order.order_id, "OrderCancelled")
    assert sorted(mail.subject.split()[-1] for mail in shop.emails(order.order_id)) == [
        "cancelled",
        "confirmed",
    ]


async def test_cancelling_a_pending_order_gives_back_its_reservations_first(shop: Shop) -> None:
    product = await shop.add_product(3)
    # The slow card keeps the order pending (authorizing) while the cancel arrives.
    order = await shop.place([(product, 2)], token="tok_timeout")
    await shop.cancel(order.order_id)

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("cancelled", None)
    assert await shop.stock(product) == StockFigures(available=3, reserved=0, sold=0)
    await shop.wait_notified(order.order_id, "OrderCancelled")
    assert len(shop.emails(order.order_id)) == 1


async def test_placing_the_same_order_twice_makes_one_order(shop: Shop) -> None:
    product = await shop.add_product(5)
    order = shop.order([(product, 2)])

    await shop.publisher.publish(order)
    await shop.publisher.publish(order)

    await shop.wait_status(order.order_id, {"confirmed"})
    await shop.drain()
    assert await shop.stock(product) == StockFigures(available=3, reserved=0, sold=2)
    assert len(shop.emails(order.order_id)) == 1


async def test_redelivering_every_record_of_finished_orders_changes_nothing(
    shop: Shop, stack: RunningStack
) -> None:
    """Every command and reply an order caused, delivered a second time: no effect."""
    product = await shop.add_product(6)
    confirmed, declined = await shop.cancelled_and_declined(product)
    await shop.drain()
    before = await shop.stock(product)
    orders = {str(confirmed.order_id).encode(), str(declined.order_id).encode()}

    replayed = await replay(
        stack.urls.kafka_bootstrap_servers,
        ["orders.commands", "orders.replies", "inventory.commands", "payments.commands"],
        lambda key, value: key in orders or any(o in value for o in orders),
    )

    replayed_types = {json.loads(value)["type"] for _, value in replayed}
    assert replayed_types >= {
        "PlaceOrder", "CancelOrder",
        "StockReserved", "StockReleased", "PaymentAuthorized", "PaymentDeclined",
        "PaymentRefunded", "ReserveStock", "ReleaseStock", "CommitStock",
        "AuthorizePayment", "RefundPayment",
    }  # fmt: skip
    await shop.drain()
    assert await shop.stock(product) == before == StockFigures(6, 0, 0)
    assert (await shop.wait_status(confirmed.order_id))["status"] == "cancelled"
    assert (await shop.wait_status(declined.order_id))["status"] == "rejected"
    assert len(shop.emails(confirmed.order_id)) == 2
    assert len(shop.emails(declined.order_id)) == 1


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    shop: Shop, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        poison = await producer.send_and_wait("orders.commands", b"{not json", key=b"poison")
    finally:
        await producer.stop()
    product = await shop.add_product(1)
    order = await shop.place([(product, 1)])

    assert (await shop.wait_status(order.order_id))["status"] == "confirmed"
    letters = await read_all(bootstrap, "orders.commands.dlq")
    [letter] = [
        decode_dead_letter(value)
        for _, value in letters
        if decode_dead_letter(value).offset == poison.offset
        and decode_dead_letter(value).partition == poison.partition
    ]
    assert letter.source_topic == "orders.commands"
    assert letter.original_value == b"{not json"
    assert "not JSON" in letter.error


async def test_the_read_models_in_redis_follow_the_order_and_the_stock(
    shop: Shop, stack: RunningStack
) -> None:
    product = await shop.add_product(2)
    cache = aioredis.from_url(stack.urls.redis_url, decode_responses=True)
    pubsub = cache.pubsub()
    order = shop.order([(product, 1)])
    await pubsub.subscribe(readmodel.order_status_channel(order.order_id))
    try:
        await shop.publisher.publish(order)

        async def next_announcement() -> dict[str, str] | None:
            # None also stands for the subscription's own confirmation, so keep listening.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            return None if message is None else dict(json.loads(message["data"]))

        announced = await eventually_async(
            next_announcement, "a status change announced", within=60, interval=0
        )
        assert announced["status"] == "confirmed"
        assert await cache.hgetall(readmodel.order_status_key(order.order_id)) == announced
        await shop.wait_stock(product, StockFigures(1, 0, 1))
        stock = await cache.hgetall(readmodel.stock_key(product))
        assert (stock["available"], stock["reserved"], stock["sold"]) == ("1", "0", "1")
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await cache.aclose()
