"""The saga's throughput and latency under each processing guarantee.

The processors run as real worker processes against the benchmark's stack. Each round
places the same number of orders (plenty of stock, tok_visa) as fast as one producer can,
then waits until the read model shows every order terminal. exactly_once is reported as a
ratio against at_least_once (Conveyor's default), measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from decimal import Decimal
from uuid import UUID

import asyncpg
from rich.console import Console
from rich.table import Table

from conveyor.devstack.components import Components
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.infra.publisher import Publisher

ORDERS = 300
SOLO_ORDERS = 15
PRODUCTS = 10
PRICE = Decimal("9.99")
GUARANTEES = ("at_least_once", "exactly_once")


def _order(products: list[UUID]) -> m.PlaceOrder:
    line = m.OrderLine(
        product_id=products[uuid.uuid4().int % len(products)],
        quantity=1,
        unit_price=PRICE,
        subtotal=PRICE,
    )
    return m.PlaceOrder(
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        customer_email="bench@example.com",
        items=(line,),
        currency="EUR",
        total=PRICE,
        payment_token="tok_visa",
    )


async def _round(stack: LocalStack, console: Console) -> dict[str, float]:
    urls = stack.service_urls()
    pool = await asyncpg.create_pool(urls.database_url, min_size=1, max_size=2)
    try:
        async with Publisher(urls.kafka_bootstrap_servers) as publisher:
            products = [uuid.uuid4() for _ in range(PRODUCTS)]
            for product in products:
                await publisher.publish(
                    m.UpsertProduct(
                        product_id=product, sku=product.hex[:12], name="Bench", initial_stock=10**6
                    )
                )
            warm_up = _order(products)
            await publisher.publish(warm_up)
            await _wait_terminal(pool, [warm_up.order_id], console)
            # One order at a time: the latency a single customer sees on a quiet system.
            alone = []
            for _ in range(SOLO_ORDERS):
                order = _order(products)
                placed = time.perf_counter()
                await publisher.publish(order)
                await _wait_terminal(pool, [order.order_id], console, poll_seconds=0.01)
                alone.append(time.perf_counter() - placed)
            orders = [_order(products) for _ in range(ORDERS)]
            began = time.perf_counter()
            await asyncio.gather(*(publisher.publish(order) for order in orders))
            await _wait_terminal(pool, [order.order_id for order in orders], console)
            elapsed = time.perf_counter() - began
        rows = await pool.fetch(
            "SELECT extract(epoch FROM updated_at - created_at) AS seconds FROM orders "
            "WHERE id = ANY($1::uuid[]) AND status = 'confirmed'",
            [order.order_id for order in orders],
        )
    finally:
        await pool.close()
    latencies = sorted(float(row["seconds"]) for row in rows)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "orders_per_second": ORDERS / elapsed,
        "p50": quantiles[49],
        "p95": quantiles[94],
        "confirmed": len(latencies),
        "alone_p50": statistics.median(alone),
    }


async def _wait_terminal(
    pool: asyncpg.Pool, order_ids: list[UUID], console: Console, poll_seconds: float = 0.2
) -> None:
    deadline = time.monotonic() + 300
    while True:
        done = await pool.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1::uuid[]) AND status <> 'pending'",
            order_ids,
        )
        if done == len(order_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {len(order_ids)} orders finished in 300 s")
        await asyncio.sleep(poll_seconds)


def run(console: Console, stack: LocalStack) -> None:
    components = Components(stack)
    results: dict[str, dict[str, float]] = {}
    for guarantee in GUARANTEES:
        console.print(f"saga: {ORDERS} orders through the processors under {guarantee} ...")
        components.up({"CONVEYOR_PROCESSING_GUARANTEE": guarantee})
        try:
            results[guarantee] = asyncio.run(_round(stack, console))
        finally:
            components.down()
    baseline = results["at_least_once"]
    table = Table(
        title=f"The order saga end to end: {ORDERS} orders at once, then {SOLO_ORDERS} alone"
    )
    for column in (
        "guarantee",
        "orders/s",
        "ratio",
        "p50 accepted→terminal",
        "p95",
        "one order alone, p50",
    ):
        table.add_column(column, justify="right")
    for guarantee, figures in results.items():
        table.add_row(
            guarantee,
            f"{figures['orders_per_second']:.1f}",
            f"{figures['orders_per_second'] / baseline['orders_per_second']:.2f}",
            f"{figures['p50'] * 1000:.0f} ms",
            f"{figures['p95'] * 1000:.0f} ms",
            f"{figures['alone_p50'] * 1000:.0f} ms",
        )
    console.print(table)
