"""The payments processor's batches: the gateway calls of a batch run side by side and each
answer goes out as soon as it is known, so a card the gateway is slow to answer holds up only
its own order, not the orders queued with it."""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.domain import messages as m
from conveyor.domain.topics import DEFAULT_PARTITIONS
from tests.conftest import RunningStack
from tests.streams.shop import Shop, key_in_partition_of, read_records
from tests.streams.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICK_ORDERS = 5
# The slow card's one attempt waits for the sandbox's answer (a 504 after its timeout delay):
# time for the quick orders to finish first, unless they wait behind it. A batch window long
# enough that the backlog is surely one batch.
SLOW_CARD_ENDS_LATE = {
    "CONVEYOR_PAYMENT_TIMEOUT_SECONDS": "20",
    "CONVEYOR_PAYMENT_ATTEMPTS": "1",
    "CONVEYOR_BATCH_SECONDS": "1",
}


async def wait_authorizations_queued(
    bootstrap: str, orders: list[m.PlaceOrder], within: float = 60.0
) -> None:
    """Until the saga has asked payments to authorize each of ``orders``."""
    wanted = {str(order.order_id) for order in orders}
    deadline = time.monotonic() + within
    while True:
        # Keys only: other tests leave records on the topic that are not JSON on purpose.
        asked = {
            record.key.decode()
            for record in await read_records(bootstrap, "payments.commands")
            if record.key is not None
        }
        if wanted <= asked:
            return
        assert time.monotonic() < deadline, f"not asked to authorize: {wanted - asked}"
        await asyncio.sleep(0.2)


async def test_a_card_that_never_answers_holds_up_only_its_own_order(
    shop: Shop, stack: RunningStack, workers: Workers
) -> None:
    product = await shop.add_product(QUICK_ORDERS + 1)
    workers.stop("payments")
    try:
        # Queued while payments is away, the slow card first, all in one partition of
        # payments.commands: one fetch, one batch when it is back.
        slow = shop.order([(product, 1)], token="tok_timeout")
        quick = [
            shop.order([(product, 1)]).model_copy(
                update={"order_id": key_in_partition_of(slow.order_id, DEFAULT_PARTITIONS)}
            )
            for _ in range(QUICK_ORDERS)
        ]
        for order in (slow, *quick):
            await shop.publisher.publish(order)
        await wait_authorizations_queued(stack.urls.kafka_bootstrap_servers, [slow, *quick])
    finally:
        await asyncio.to_thread(workers.start_with, "payments", SLOW_CARD_ENDS_LATE)
    try:
        for order in quick:
            await shop.wait_status(order.order_id, {"confirmed"})
        # The gateway's timeout is still running for the slow card.
        slow_row = await shop.order_row(slow.order_id)
        assert slow_row is not None
        assert slow_row["status"] == "pending"
        ended = await shop.wait_status(slow.order_id)
        assert (ended["status"], ended["reason"]) == ("rejected", "payment_unavailable")
    finally:
        workers.stop("payments")
        await asyncio.to_thread(workers.start, "payments")
