"""The saga under pressure: many orders over scarce stock, processors killed mid-stream, and a
gateway whose answers come late, malformed or never; the money stays right through all of it."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
from uuid import UUID

import pytest

from conveyor.domain import messages as m
from conveyor.domain.processors import PROCESSOR_NAMES
from tests.support.shop import Shop, assert_money_settled, assert_saga_invariants
from tests.support.stack import RunningStack
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def scarce_catalog(shop: Shop) -> dict[UUID, int]:
    units = (3, 5, 2, 4)
    products = await asyncio.gather(*(shop.add_product(n) for n in units))
    return dict(zip(products, units, strict=True))


ORDINARY_CARDS = ("tok_visa", "tok_visa", "tok_visa", "tok_chargeDeclined")
# Ordinary cards with, mixed in, answers the gateway loses: late, never, or without an id.
FAULTY_GATEWAY_CARDS = (*ORDINARY_CARDS, "tok_lateAuthorize", "tok_timeout", "tok_malformed")


def random_orders(
    shop: Shop,
    products: list[UUID],
    count: int,
    seed: int,
    cards: tuple[str, ...] = ORDINARY_CARDS,
) -> list[m.PlaceOrder]:
    rng = random.Random(seed)
    orders = []
    for _ in range(count):
        chosen = rng.sample(products, rng.randint(1, 2))
        lines = [(product, rng.randint(1, 2)) for product in chosen]
        orders.append(shop.order(lines, rng.choice(cards)))
    return orders


async def test_concurrent_orders_over_scarce_stock_never_oversell(shop: Shop) -> None:
    initial = await scarce_catalog(shop)
    orders = random_orders(shop, list(initial), 60, seed=1)

    await asyncio.gather(*(shop.publisher.publish(order) for order in orders))

    await assert_saga_invariants(shop, initial, orders)
    rows = [await shop.wait_status(order.order_id) for order in orders]
    statuses = {row["status"] for row in rows}
    # Scarce stock and declined cards: the run exercised both outcomes.
    assert statuses == {"confirmed", "rejected"}


@pytest.mark.chaos
async def test_processors_killed_mid_stream_lose_and_duplicate_nothing(
    shop: Shop, workers: Workers, stack: RunningStack
) -> None:
    initial = await scarce_catalog(shop)
    orders = random_orders(shop, list(initial), 50, seed=2)
    first, second = orders[:25], orders[25:]
    await asyncio.gather(*(shop.publisher.publish(order) for order in first))
    await asyncio.sleep(0.5)

    for name in PROCESSOR_NAMES:
        workers.kill(name)
    # The saga and inventory tables must come back from their changelogs alone.
    for name in ("orders", "inventory"):
        shutil.rmtree(workers.root / "data" / name)
    await asyncio.gather(*(shop.publisher.publish(order) for order in second))
    await asyncio.to_thread(workers.start)

    await assert_saga_invariants(shop, initial, orders, exact=False)
    await assert_money_settled(stack.urls, orders)


async def test_late_lost_and_malformed_gateway_answers_leave_the_money_right(
    shop: Shop, stack: RunningStack
) -> None:
    units = (12, 12, 12, 12)
    products = await asyncio.gather(*(shop.add_product(n) for n in units))
    initial = dict(zip(products, units, strict=True))
    orders = random_orders(shop, products, 40, seed=3, cards=FAULTY_GATEWAY_CARDS)
    assert {order.payment_token for order in orders} == set(FAULTY_GATEWAY_CARDS)

    await asyncio.gather(*(shop.publisher.publish(order) for order in orders))

    await assert_saga_invariants(shop, initial, orders)
    await assert_money_settled(stack.urls, orders)


def test_a_worker_whose_kafka_stopped_answering_still_stops_when_asked(
    stack: RunningStack, workers: Workers
) -> None:
    """A clean stop waits for Kafka (the last commit, the producer's flush); with Kafka gone
    the worker would never exit. Past its grace it exits anyway, saying why."""
    with workers.restarted_with({"CONVEYOR_STOP_GRACE_SECONDS": "3"}, "recommendations"):
        worker = workers.workers["recommendations"].launched
        assert worker.process is not None
        kafka_pid = stack.local.state.load()["kafka"].pid
        os.kill(kafka_pid, signal.SIGSTOP)
        try:
            worker.process.send_signal(signal.SIGTERM)
            # Without the grace it still waits when this gives up (a request times out
            # after 90 s, and the stop asks again).
            exit_code = worker.process.wait(timeout=60)
        finally:
            os.kill(kafka_pid, signal.SIGCONT)
        log = worker.log()
    assert exit_code == 1
    assert "still stopping 3 s after SIGTERM" in log
    assert "is it reachable?" in log
