"""Records whose handling waits on a service that is down are parked on ``<topic>.retry``, not
retried in place: the partition keeps flowing for everyone else, the parked record is done
once the service is back (once), and one whose tries run out lands in its DLQ with the error.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from conveyor.devstack import processes
from conveyor.devstack.money import gateway_ledger, gateway_session
from conveyor.devstack.stack import SERVICES
from conveyor.domain import messages as m
from conveyor.domain.codec import decode_dead_letter
from conveyor.domain.topics import DEFAULT_PARTITIONS
from conveyor.infra import readmodel
from tests.support.sandbox import fail_next_refunds
from tests.support.shop import Shop, key_in_partition_of, read_all
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def parked(workers: Workers, processor: str, topic: str) -> float:
    return sum(
        value
        for labels, value in workers.samples(processor, "conveyor_records_parked_total")
        if labels["topic"] == topic
    )


async def refunds_failing(stack: RunningStack, count: int) -> None:
    async with gateway_session(stack.urls) as session:
        await fail_next_refunds(session, stack.urls.payment_gateway_url, count)


@pytest.fixture
def stopped_service(stack: RunningStack) -> Iterator[Callable[[str], None]]:
    """Stops a service of the stack on demand; whatever was stopped runs again afterwards."""
    stopped: list[str] = []

    def stop(name: str) -> None:
        record = stack.local.state.load().get(name)
        assert record is not None, f"{name} is not a service this stack started"
        [service] = [s for s in SERVICES if s.name == name]
        processes.stop(record, service.stop_signal)
        stopped.append(name)

    try:
        yield stop
    finally:
        if stopped:
            stack.local.up()


async def test_a_refund_the_gateway_keeps_failing_is_parked_while_its_partition_flows_on(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(10)
    refunded = await shop.place([(product, 2)])
    await shop.wait_status(refunded.order_id, {"confirmed"})
    before = parked(workers, "payments", "payments.commands")
    await refunds_failing(stack, 1_000_000)
    try:
        await shop.cancel(refunded.order_id)

        async def refund_parked() -> bool:
            return parked(workers, "payments", "payments.commands") > before

        await eventually_async(refund_parked, "the refund parked")
        # Orders whose payment commands share the refund's partition go through meanwhile.
        others = [
            shop.order([(product, 1)]).model_copy(
                update={"order_id": key_in_partition_of(refunded.order_id, DEFAULT_PARTITIONS)}
            )
            for _ in range(3)
        ]
        for order in others:
            await shop.publisher.publish(order)
        for order in others:
            await shop.wait_status(order.order_id, {"confirmed"})
        still = await shop.order_row(refunded.order_id)
        assert still is not None
        assert still["status"] == "confirmed"
    finally:
        await refunds_failing(stack, 0)

    await shop.wait_status(refunded.order_id, {"cancelled"})
    [payment] = await gateway_ledger(
        stack.urls,
        reference=str(refunded.order_id),
    )
    assert len(payment["refunds"]) == 1
    assert Decimal(payment["amount_refunded"]) == refunded.total


async def test_a_record_whose_tries_run_out_lands_in_its_dead_letter_topic_with_the_error(
    shop: Shop,
    stack: RunningStack,
    workers: Workers,
    stopped_service: Callable[[str], None],
) -> None:
    product = await shop.add_product(2)
    await shop.drain()
    workers.stop("notifications")
    await asyncio.to_thread(
        workers.start_with, "notifications", {"CONVEYOR_RETRY_DELAYS_SECONDS": "[0.2, 0.2]"}
    )
    try:
        await asyncio.to_thread(stopped_service, "smtp")
        order = await shop.place([(product, 1)])
        await shop.wait_status(order.order_id, {"confirmed"})
        key = str(order.order_id).encode()

        async def dead_lettered() -> bool:
            return any(
                k == key
                for k, _ in await read_all(stack.urls.kafka_bootstrap_servers, "orders.events.dlq")
            )

        await eventually_async(dead_lettered, "the email's event dead-lettered")
        [letter] = [
            decode_dead_letter(value)
            for k, value in await read_all(stack.urls.kafka_bootstrap_servers, "orders.events.dlq")
            if k == key
        ]
        assert letter.source_topic == "orders.events"
        assert json.loads(letter.original_value or b"")["type"] == "OrderConfirmed"
        assert "OrderConfirmed failed: SMTP" in letter.error
        assert "gave up after 3 tries" in letter.error
        exhausted = [
            value
            for labels, value in workers.samples("notifications", "conveyor_events_failed_total")
            if labels["reason"] == "retries_exhausted"
        ]
        assert exhausted == [1.0]
        assert shop.emails(order.order_id) == []
    finally:
        workers.stop("notifications")
        await asyncio.to_thread(workers.start, "notifications")


async def test_projections_parked_while_postgresql_is_down_are_applied_after_and_never_go_back(
    shop: Shop,
    workers: Workers,
    cache: aioredis.Redis,
    stopped_service: Callable[[str], None],
    stack: RunningStack,
) -> None:
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    line = m.OrderLine(
        product_id=uuid.uuid4(), quantity=1, unit_price=Decimal("10.00"), subtotal=Decimal("10.00")
    )
    await shop.publisher.publish(
        m.OrderPlaced(
            order_id=order_id,
            user_id=user_id,
            customer_email="parked@example.com",
            items=(line,),
            currency="EUR",
            total=line.subtotal,
        )
    )
    await shop.wait_status(order_id, {"pending"})
    announced: list[str] = []
    channel = cache.pubsub()
    await channel.subscribe(readmodel.order_status_channel(order_id))

    async def listen() -> None:
        async for message in channel.listen():
            if message["type"] == "message":
                announced.append(json.loads(message["data"])["status"])

    listening = asyncio.create_task(listen())
    try:
        before = parked(workers, "projector", "orders.events")
        await asyncio.to_thread(stopped_service, "postgres")
        await shop.publisher.publish(
            m.OrderConfirmed(order_id=order_id, user_id=user_id, payment_id="pay_parked")
        )

        async def confirmation_parked() -> bool:
            return parked(workers, "projector", "orders.events") > before

        await eventually_async(confirmation_parked, "the confirmation parked")
        await asyncio.to_thread(stack.local.up)
        await shop.pool.expire_connections()
        # The cancellation goes straight through while the confirmation may still wait.
        await shop.publisher.publish(m.OrderCancelled(order_id=order_id, user_id=user_id))

        await shop.wait_status(order_id, {"cancelled"})
        await shop.drain()
        row = await shop.order_row(order_id)
        assert row is not None
        assert row["status"] == "cancelled"
        assert (await cache.hgetall(readmodel.order_status_key(order_id)))["status"] == "cancelled"
        assert announced in (["cancelled"], ["confirmed", "cancelled"])
    finally:
        listening.cancel()
        await channel.aclose()  # type: ignore[no-untyped-call]
