"""Every pending order has a deadline: a reply that never comes ends the order, with its stock
back on the shelf, instead of leaving it pending forever.

The processors run here with a deadline of a few seconds, and a reply goes missing the way it
does in production: the processor that should send it is not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from conveyor.devstack.money import gateway_ledger
from conveyor.streams.processors.orders import DEADLINE_SWEEP_SECONDS
from tests.support.shop import Shop, StockFigures, read_records
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEADLINE_SECONDS = 8.0


@pytest.fixture(scope="module")
def short_deadline(workers: Workers) -> Iterator[Workers]:
    """The session's orders processor, which keeps the deadlines, restarted with a deadline
    of a few seconds for this module."""
    with workers.restarted_with(
        {"CONVEYOR_ORDER_DEADLINE_SECONDS": str(DEADLINE_SECONDS)}, "orders"
    ) as restarted:
        yield restarted


@contextlib.asynccontextmanager
async def away(workers: Workers, name: str) -> AsyncIterator[None]:
    """``name`` stopped for the block: its replies go missing, commands to it wait."""
    workers.stop(name)
    try:
        yield
    finally:
        await asyncio.to_thread(workers.start, name)


async def sent_about(bootstrap: str, topic: str, order_id: UUID) -> list[tuple[int, str]]:
    """(partition, message type) of every record of ``topic`` about the order, in offset
    order within each partition."""
    needle = str(order_id).encode()
    found = []
    for record in await read_records(bootstrap, topic):
        if record.value is None or needle not in record.value:
            continue
        try:
            found.append((record.partition, json.loads(record.value)["type"]))
        except (ValueError, KeyError):
            continue  # other tests leave records that are not JSON on purpose
    return found


async def wait_sent(
    bootstrap: str, topic: str, order_id: UUID, message_type: str, times: int = 1
) -> list[tuple[int, str]]:
    """Until ``topic`` holds ``times`` records of ``message_type`` about the order."""
    return await eventually_async(
        lambda: sent_about(bootstrap, topic, order_id),
        f"{message_type} x{times} on {topic}",
        until=lambda sent: sum(1 for _, kind in sent if kind == message_type) >= times,
        within=DEADLINE_SECONDS * times + 60,
        interval=0.5,
    )


async def saga_versions(bootstrap: str, order_id: UUID) -> list[dict[str, Any]]:
    """Every version of the order's saga its changelog holds, oldest first."""
    key = json.dumps(str(order_id)).encode()
    return [
        json.loads(record.value)["v"]["saga"]
        for record in await read_records(bootstrap, "conveyor-orders-sagas-changelog")
        if record.key == key and record.value is not None
    ]


async def assert_still_pending(shop: Shop, order_id: UUID) -> None:
    row = await shop.order_row(order_id)
    assert row is not None
    assert row["status"] == "pending"


async def test_an_order_whose_stock_replies_never_come_is_rejected_timed_out(
    shop: Shop, stack: RunningStack, short_deadline: Workers
) -> None:
    """StockReserved missing past the deadline, then StockReleased missing past the next."""
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(3)
    async with away(short_deadline, "inventory"):
        order = await shop.place([(product, 2)])
        # The deadline passed while reserving: the saga gives the line back (the release
        # travels behind the reservation) ...
        await wait_sent(bootstrap, "inventory.commands", order.order_id, "ReleaseStock")
        # ... and, its reply missing too, asks again at the next deadline.
        await wait_sent(bootstrap, "inventory.commands", order.order_id, "ReleaseStock", 2)
        # The terminal status waits for the stock, so it means the figures are final.
        await assert_still_pending(shop, order.order_id)

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "timed_out")
    await shop.wait_stock(product, StockFigures(available=3, reserved=0, sold=0))
    await shop.wait_notified(order.order_id, "OrderRejected")
    [email] = shop.emails(order.order_id)
    assert "timed out" in email.body


async def test_an_order_whose_payment_answer_never_comes_gives_its_stock_back_and_voids(
    shop: Shop, stack: RunningStack, short_deadline: Workers
) -> None:
    """PaymentAuthorized missing past the deadline: stock released, VoidPayment sent behind
    the AuthorizePayment on the order's payments partition, the order pending until the
    gateway has given back whatever it held (PaymentVoided)."""
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(2)
    async with away(short_deadline, "payments"):
        order = await shop.place([(product, 1)])
        sent = await wait_sent(bootstrap, "payments.commands", order.order_id, "VoidPayment")
        assert [kind for _, kind in sent] == ["AuthorizePayment", "VoidPayment"]
        assert len({partition for partition, _ in sent}) == 1
        await shop.wait_stock(product, StockFigures(available=2, reserved=0, sold=0))
        await assert_still_pending(shop, order.order_id)

    # Payments back: it authorizes (an answer the saga no longer wants), then the void
    # behind it gives that money back, and only then is the order rejected.
    row = await shop.wait_status(order.order_id, {"rejected"})
    assert row["reason"] == "timed_out"
    [payment] = await gateway_ledger(
        stack.urls,
        reference=str(order.order_id),
    )
    assert payment["status"] == "voided"


async def test_a_refund_whose_answer_never_comes_is_asked_again_and_done_once(
    shop: Shop, stack: RunningStack, short_deadline: Workers
) -> None:
    """PaymentRefunded missing while a confirmed order is cancelled."""
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(3)
    order = await shop.place([(product, 1)])
    await shop.wait_status(order.order_id, {"confirmed"})
    async with away(short_deadline, "payments"):
        await shop.cancel(order.order_id)
        await wait_sent(bootstrap, "payments.commands", order.order_id, "RefundPayment", 2)
        row = await shop.order_row(order.order_id)
        assert row is not None
        assert row["status"] == "confirmed"

    await shop.wait_status(order.order_id, {"cancelled"})
    await shop.wait_stock(product, StockFigures(available=3, reserved=0, sold=0))
    [payment] = await gateway_ledger(
        stack.urls,
        reference=str(order.order_id),
    )
    # Asked twice, refunded once: the gateway keeps nothing, and gave back no more than it took.
    assert Decimal(payment["amount_refunded"]) == order.total == Decimal(payment["amount"])


@pytest.mark.long
async def test_a_pending_orders_deadline_survives_a_restart_of_the_orders_processor(
    shop: Shop, stack: RunningStack, short_deadline: Workers
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    product = await shop.add_product(2)
    async with away(short_deadline, "inventory"):
        order = await shop.place([(product, 1)])
        await wait_sent(bootstrap, "inventory.commands", order.order_id, "ReserveStock")
        [placed] = await saga_versions(bootstrap, order.order_id)
        # No shutdown, and no local state: the saga comes back from its changelog alone.
        short_deadline.kill("orders")
        shutil.rmtree(short_deadline.root / "data" / "orders")
        await asyncio.to_thread(short_deadline.start, "orders")

        await wait_sent(bootstrap, "inventory.commands", order.order_id, "ReleaseStock")
        timed_out = (await saga_versions(bootstrap, order.order_id))[-1]
        assert timed_out["phase"] == "compensating"
        assert timed_out["placed_at"] == placed["placed_at"]

    row = await shop.wait_status(order.order_id)
    assert (row["status"], row["reason"]) == ("rejected", "timed_out")
    await shop.wait_stock(product, StockFigures(available=2, reserved=0, sold=0))


def pending_orders(workers: Workers) -> dict[str, float]:
    return {
        labels["age"]: value
        for labels, value in workers.samples("orders", "conveyor_orders_pending")
    }


async def settled_pending_total(workers: Workers) -> float:
    """The pending orders' total once two sweeps agree (the gauge is set once a sweep, so
    an order that just ended may still be counted by the last one)."""
    totals: list[float] = []

    async def sweeps_agree() -> list[float]:
        totals.append(sum(pending_orders(workers).values()))
        return totals

    await eventually_async(
        sweeps_agree,
        "two sweeps agree on the pending orders' total",
        until=lambda totals: len(totals) > 1 and totals[-1] == totals[-2],
        interval=2 * DEADLINE_SWEEP_SECONDS,
    )
    return totals[-1]


async def wait_pending_total(workers: Workers, total: float) -> dict[str, float]:

    async def pending() -> dict[str, float]:
        return pending_orders(workers)

    return await eventually_async(
        pending,
        f"the pending orders' total is {total}",
        until=lambda pending: sum(pending.values()) == total,
        within=30,
        interval=0.5,
    )


async def test_pending_orders_are_counted_by_age_until_they_end(
    shop: Shop, stack: RunningStack, short_deadline: Workers
) -> None:
    product = await shop.add_product(1)
    assert set(pending_orders(short_deadline)) == {"lt_30s", "30s_2m", "2m_10m", "gt_10m"}
    before = await settled_pending_total(short_deadline)
    async with away(short_deadline, "inventory"):
        order = await shop.place([(product, 1)])
        during = await wait_pending_total(short_deadline, before + 1)
        assert during["lt_30s"] >= 1
    await shop.wait_status(order.order_id)
    await wait_pending_total(short_deadline, before)
