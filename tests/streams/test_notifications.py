"""The customer's emails end to end: one per terminal order event, with its own Message-ID,
over one kept SMTP connection; a mail server that goes away delays them (parked, while the
input flows on) and loses none; a
redelivered event sends nothing twice; an email claimed but never sent (the processor stopped
in between) is sent once; and a poison record is dead-lettered alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from uuid import UUID

import pytest

from conveyor.api.data.notifications import list_notifications
from conveyor.devstack import processes
from conveyor.domain import messages as m
from conveyor.domain.codec import decode, decode_dead_letter
from conveyor.infra.kafka import consumer_group_lag
from conveyor.streams.processors.notifications import notification_id_for
from tests.support.shop import Shop, read_all, read_records, replay
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = pytest.mark.e2e

TERMINAL_EVENT = {"confirmed": "OrderConfirmed", "rejected": "OrderRejected"}


def message_id(order_id: UUID, event: str) -> str:
    return f"<{notification_id_for(order_id, event)}@conveyor.local>"


def counter(workers: Workers, metric: str) -> float:
    """A counter of the notifications worker, summed over its labels."""
    return sum(value for _, value in workers.samples("notifications", metric))


async def terminal_events(shop: Shop, orders: list[m.PlaceOrder]) -> dict[UUID, str]:
    return {
        order.order_id: TERMINAL_EVENT[(await shop.wait_status(order.order_id))["status"]]
        for order in orders
    }


async def notifications_sent(bootstrap: str, order_id: UUID) -> list[m.NotificationSent]:
    announced = []
    for key, value in await read_all(bootstrap, "notifications.events"):
        if key == str(order_id).encode():
            sent = decode("notifications.events", key, value).payload
            assert isinstance(sent, m.NotificationSent)
            announced.append(sent)
    return announced


async def assert_one_email_each(shop: Shop, events: dict[UUID, str]) -> None:
    """Each order's email recorded sent and delivered once, with its stable Message-ID."""
    for order_id, event in events.items():
        await shop.wait_notified(order_id, event)
    await shop.drain()
    for order_id, event in events.items():
        [email] = shop.emails(order_id)
        assert email.message_id == message_id(order_id, event)


@pytest.fixture
def smtp_sink(stack: RunningStack) -> Iterator[processes.ProcessRecord]:
    """The stack's SMTP sink, running again (on the same port and maildir) after the test."""
    record = stack.local.state.load().get("smtp")
    if record is None:
        pytest.skip("the SMTP server is not one this stack started")
    try:
        yield record
    finally:
        running = stack.local.state.load().get("smtp")
        if running is None or not running.is_alive():
            stack.local.up()


async def test_every_finished_order_gets_one_email_over_one_kept_connection(
    shop: Shop, workers: Workers
) -> None:
    product = await shop.add_product(100)
    await shop.drain()
    connections, emails = (
        counter(workers, "conveyor_smtp_connections_total"),
        counter(workers, "conveyor_emails_sent_total"),
    )
    orders = [
        shop.order([(product, 1)], token="tok_chargeDeclined" if i % 4 == 0 else "tok_visa")
        for i in range(40)
    ]

    await asyncio.gather(*(shop.publisher.publish(order) for order in orders))

    events = await terminal_events(shop, orders)
    assert set(events.values()) == {"OrderConfirmed", "OrderRejected"}
    await assert_one_email_each(shop, events)
    for order in orders:
        assert shop.emails(order.order_id)[0].envelope_to == (order.customer_email,)
    assert counter(workers, "conveyor_emails_sent_total") - emails == len(orders)
    # The connection is kept across emails and batches (one more at most, had it dropped).
    assert counter(workers, "conveyor_smtp_connections_total") - connections <= 1


async def test_a_mail_server_that_goes_away_delays_the_emails_and_loses_none(
    shop: Shop, workers: Workers, stack: RunningStack, smtp_sink: processes.ProcessRecord
) -> None:
    product = await shop.add_product(20)
    warm_up = await shop.place([(product, 1)])
    await shop.wait_notified(warm_up.order_id, "OrderConfirmed")
    connections = counter(workers, "conveyor_smtp_connections_total")
    parked = counter(workers, "conveyor_records_parked_total")
    bootstrap = stack.urls.kafka_bootstrap_servers

    await asyncio.to_thread(processes.stop, smtp_sink)
    orders = [await shop.place([(product, 1)]) for _ in range(5)]
    events = await terminal_events(shop, orders)
    ids = [order.order_id for order in orders]
    # The processor reached the server while it was away: its claims wait, unsent.

    async def claimed_unsent() -> int:
        count: int = await shop.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE order_id = ANY($1) AND sent_at IS NULL", ids
        )
        return count

    await eventually_async(
        claimed_unsent, "an email claimed while the server is away", within=60, interval=0.1
    )
    assert all(shop.emails(order_id) == [] for order_id in ids)
    # Parked, not retried in place: the processor's input partitions move on meanwhile.

    async def orders_events_lag() -> dict[tuple[str, int], int]:
        lags = await consumer_group_lag(bootstrap, "conveyor-notifications")
        return {at: records for at, records in lags.items() if at[0] == "orders.events" and records}

    await eventually_async(
        orders_events_lag,
        "orders.events consumed while the server is away",
        until=lambda lag: not lag,
        within=60,
        interval=0.2,
    )
    assert counter(workers, "conveyor_records_parked_total") > parked
    await asyncio.to_thread(stack.local.up)

    await assert_one_email_each(shop, events)
    assert counter(workers, "conveyor_smtp_connections_total") > connections


async def test_a_redelivered_terminal_event_sends_no_second_email(
    shop: Shop, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(2)
    order = await shop.place([(product, 1)])
    await shop.wait_notified(order.order_id, "OrderConfirmed")
    await shop.drain()
    [first] = await notifications_sent(bootstrap, order.order_id)

    key = str(order.order_id).encode()
    redelivered = await replay(
        bootstrap,
        ["orders.events"],
        lambda k, value: k == key and json.loads(value)["type"] == "OrderConfirmed",
    )
    assert len(redelivered) == 1

    await shop.drain()
    assert len(shop.emails(order.order_id)) == 1
    # Announced again, as it was the first time: same event id, same recorded time.
    assert await notifications_sent(bootstrap, order.order_id) == [first, first]
    recorded = await shop.pool.fetchval(
        "SELECT sent_at FROM notifications WHERE order_id = $1", order.order_id
    )
    assert recorded == first.sent_at


async def test_an_email_claimed_but_never_sent_is_sent_once_when_its_event_comes(
    shop: Shop, stack: RunningStack
) -> None:
    """The crash window: the claim was committed, then the processor stopped before sending."""
    product = await shop.add_product(2)
    order = shop.order([(product, 1)])
    notification_id = notification_id_for(order.order_id, "OrderConfirmed")
    await shop.pool.execute(
        "INSERT INTO notifications (id, user_id, order_id, event, recipient, subject, sent_at) "
        "VALUES ($1, $2, $3, 'OrderConfirmed', $4, $5, NULL)",
        notification_id,
        order.user_id,
        order.order_id,
        order.customer_email,
        f"Your order {str(order.order_id)[:8]} is confirmed",
    )
    # The customer's list shows no email that is only claimed.
    assert await list_notifications(shop.pool, order.user_id, 10, None) == ([], None)

    await shop.publisher.publish(order)

    await shop.wait_notified(order.order_id, "OrderConfirmed")
    await shop.drain()
    [email] = shop.emails(order.order_id)
    assert email.message_id == f"<{notification_id}@conveyor.local>"
    [listed], _ = await list_notifications(shop.pool, order.user_id, 10, None)
    assert (listed.id, listed.event) == (notification_id, "OrderConfirmed")
    [announced] = await notifications_sent(stack.urls.kafka_bootstrap_servers, order.order_id)
    assert announced.sent_at == listed.sent_at


@pytest.mark.slow
async def test_a_poison_record_in_a_batch_is_dead_lettered_alone(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    """A backlog taken as one batch: an event of an order never placed, a duplicate, others."""
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(10)
    workers.stop("notifications")
    # A clean stop ends both agents (inputs and parked records) quietly: an SRE reading
    # the log of a rolling restart must not find a crash in it.
    assert "Crashed" not in workers.workers["notifications"].log_tail(100_000)
    try:
        before = await shop.place([(product, 1)])
        unknown = shop.order([(product, 1)])
        await shop.publisher.publish(
            m.OrderCancelled(order_id=unknown.order_id, user_id=unknown.user_id)
        )
        after = await shop.place([(product, 1)], token="tok_chargeDeclined")
        orders = [before, after]
        events = await terminal_events(shop, orders)
        # `after`'s terminal event twice in the same backlog: one email for both.
        after_key = str(after.order_id).encode()
        await replay(
            bootstrap,
            ["orders.events"],
            lambda key, value: key == after_key and json.loads(value)["type"] == "OrderRejected",
        )
    finally:
        # A batch window long enough that the backlog's six records are surely one batch.
        await asyncio.to_thread(
            workers.start_with, "notifications", {"CONVEYOR_BACKGROUND_BATCH_SECONDS": "1"}
        )
    try:
        await assert_one_email_each(shop, events)
        batches = {
            labels["le"]: value
            for labels, value in workers.samples("notifications", "conveyor_batch_size_bucket")
        }
        assert batches["+Inf"] - batches["5.0"] >= 1, f"the backlog was split: {batches}"
    finally:
        workers.stop("notifications")
        await asyncio.to_thread(workers.start, "notifications")

    assert len(await notifications_sent(bootstrap, after.order_id)) == 2
    letters = [
        letter
        for _, value in await read_all(bootstrap, "orders.events.dlq")
        if (letter := decode_dead_letter(value)).original_value is not None
        and any(str(o.order_id).encode() in letter.original_value for o in [*orders, unknown])
    ]
    [letter] = letters
    assert str(unknown.order_id).encode() in (letter.original_value or b"")
    assert "no OrderPlaced seen" in letter.error
    # Each order's customer was written to the changelog partition of the order's records.
    partition_of = {
        record.key: record.partition for record in await read_records(bootstrap, "orders.events")
    }
    customers = await read_records(bootstrap, "conveyor-notifications-customers-changelog")
    written = {
        order.order_id: {
            record.partition
            for record in customers
            if record.key == json.dumps(str(order.order_id)).encode()
        }
        for order in orders
    }
    assert written == {
        order.order_id: {partition_of[str(order.order_id).encode()]} for order in orders
    }
