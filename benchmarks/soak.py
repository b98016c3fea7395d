"""A soak: does an order cost the same on a hot product's 100,000th sale as on its first?

The measurement for "hot products: state bounded by what is open, cost per order flat". The
five processors run as real worker processes with a one-minute state retention, and orders
arrive open-loop at a fixed offered rate (``--rate``), never waiting for earlier ones:

- a restore baseline: 1,000 orders on a fresh processor set, then the inventory and orders
  workers are SIGKILLed, their local state (RocksDB) deleted, and restarted; the time until
  a probe order is terminal again is the restore time;
- one product: every order buys the same product;
- Zipf over 1,000 products (s = 1.1, fixed seed): a few hot products and a long tail;
- with ``--through-edge`` (``make soak`` only): one product again, through POST /orders;
- the restore again, after all of the above.

Per window of ``--window`` orders (in the order they were sent) it prints the completion
rate and the latency from PostgreSQL's ``orders`` rows; per scenario the largest record of
the inventory's changelogs and what the stateful processors hold. The goals are printed as
ratios, never asserted on time. What is asserted are the correctness gates: every order
terminal, the stock equation with nothing left reserved, and no dead letter anywhere.

``make soak`` (``python -m benchmarks.soak [--orders N] [--window N] [--rate R]
[--through-edge | --edge-only]``) runs it on a stack of its own; ``make bench`` runs a short
one. ``--edge-only`` runs the one-product scenario through the edge alone: 10 minutes at
50/s in windows of one minute is ``--edge-only --orders 30000 --window 3000 --rate 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from benchmarks.edge import ADMIN_EMAIL, EdgeServer
from conveyor.devstack import processes
from conveyor.devstack.components import Components
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.domain.topics import DEAD_LETTER_SUFFIX, consumer_group
from conveyor.infra.publisher import Publisher
from conveyor.streams.runtime import WorkerSettings

ORDERS = 100_000
WINDOW = 10_000
RATE = 60.0
# What `make bench` runs: the same scenarios, short enough for a benchmark suite.
BENCH_ORDERS = 6_000
BENCH_WINDOW = 1_000
RESTORE_BASELINE_ORDERS = 1_000
ZIPF_PRODUCTS = 1_000
ZIPF_EXPONENT = 1.1
ZIPF_SEED = 20_240_601
# Never the limit: a rejection for want of stock would be a different saga.
STOCK = 10**9
PRICE = Decimal("9.99")

RETENTION_SECONDS = 60
SWEEP_SECONDS = 5
# The two processors whose tables must come back from their changelogs after a crash.
STATEFUL = ("inventory", "orders")
READY_LINE = "[^Worker]: Ready"

# Sends under way at once: more than the offered rate ever needs (a send takes a few ms),
# so the schedule, not the sender, sets the pace; a Kafka stall cannot pile up without end.
MAX_IN_FLIGHT = 64
# Waiting for the saga to finish fails when no order became terminal for this long.
STALL_SECONDS = 120.0
PROGRESS_SECONDS = 10.0
# A killed worker stays in its consumer group until its session times out; a worker that
# joins before then waits for it. Restore time starts after that wait (and a margin).
SESSION_TIMEOUT_MARGIN_SECONDS = 2.0
# The edge's access tokens live 15 minutes; a soak through it outlasts one.
LOGIN_EVERY_SECONDS = 300.0


class GateFailed(Exception):
    """A correctness gate of the soak is broken; the figures would mean nothing."""


# -- what was sent, and what became of it ---------------------------------------------------


@dataclass
class Injection:
    """One scenario's orders, in the order they were sent."""

    label: str
    # Every order of a scenario has this customer, so its progress is one indexed count.
    customer: UUID
    products: list[UUID]
    order_ids: list[UUID | None]
    sent_at: list[float]  # wall-clock seconds, comparable with PostgreSQL's timestamps


@dataclass(frozen=True)
class Outcome:
    """One order's row in PostgreSQL at the end."""

    status: str
    accepted: float  # created_at: OrderPlaced's time (or the edge's, through the edge)
    terminal: float  # updated_at: the terminal event's time


@dataclass(frozen=True)
class WindowFigures:
    first: int
    last: int
    sent_per_second: float
    completed_per_second: float
    p50_ms: float
    p95_ms: float
    p95_since_sent_ms: float
    rejected: int


@dataclass(frozen=True)
class RestoreFigures:
    after_orders: int
    # Restart until both workers log that they are ready.
    ready_seconds: float
    # Restart until a probe order placed at once is terminal: they process again.
    probe_seconds: float


@dataclass
class ChangelogFigures:
    records: int = 0
    tombstones: int = 0
    largest_bytes: int = 0


def _quantile(values: Sequence[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _per_second(events: int, seconds: float) -> float:
    # Intervals between the first and the last event: a steady stream at r gives exactly r.
    return (events - 1) / seconds if events > 1 and seconds > 0 else float("nan")


def window_figures(
    outcomes: Sequence[Outcome], sent_at: Sequence[float], window: int
) -> list[WindowFigures]:
    figures = []
    for start in range(0, len(outcomes), window):
        chunk = outcomes[start : start + window]
        sent = sent_at[start : start + window]
        terminal = [outcome.terminal for outcome in chunk]
        latencies = [outcome.terminal - outcome.accepted for outcome in chunk]
        since_sent = [o.terminal - s for o, s in zip(chunk, sent, strict=True)]
        figures.append(
            WindowFigures(
                first=start + 1,
                last=start + len(chunk),
                sent_per_second=_per_second(len(sent), max(sent) - min(sent)),
                completed_per_second=_per_second(len(chunk), max(terminal) - min(terminal)),
                p50_ms=_quantile(latencies, 50) * 1000,
                p95_ms=_quantile(latencies, 95) * 1000,
                p95_since_sent_ms=_quantile(since_sent, 95) * 1000,
                rejected=sum(outcome.status == "rejected" for outcome in chunk),
            )
        )
    return figures


def completion_ratio(figures: Sequence[WindowFigures], window: int) -> float:
    """The last full window's completion rate ÷ the first's."""
    full = [f for f in figures if f.last - f.first + 1 == window] or list(figures)
    return full[-1].completed_per_second / full[0].completed_per_second


def zipf_draws(products: Sequence[UUID], count: int) -> list[UUID]:
    """``count`` products, the k-th most popular drawn with weight 1 / k**s."""
    rng = random.Random(ZIPF_SEED)
    weights = itertools.accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, len(products) + 1))
    return rng.choices(products, cum_weights=list(weights), k=count)


# -- sending at a fixed offered rate --------------------------------------------------------


async def open_loop(
    count: int,
    rate: float,
    send: Callable[[int], Coroutine[Any, Any, None]],
    window: int,
    progress: Callable[[int], Coroutine[Any, Any, None]],
) -> None:
    """Call ``send(i)`` at ``start + i / rate`` for each i, never waiting for earlier sends.

    ``progress(sent)`` runs beside the sends after every ``window`` of them. A send that
    fails stops the injection: an order that was never accepted has nothing to measure.
    """
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(i: int) -> None:
        try:
            await send(i)
        finally:
            in_flight.release()

    began = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        for i in range(count):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            tasks.create_task(one(i))
            if (i + 1) % window == 0 or i + 1 == count:
                tasks.create_task(progress(i + 1))


def _place_order(customer: UUID, product: UUID) -> m.PlaceOrder:
    line = m.OrderLine(product_id=product, quantity=1, unit_price=PRICE, subtotal=PRICE)
    return m.PlaceOrder(
        order_id=uuid.uuid4(),
        user_id=customer,
        customer_email="soak@example.com",
        items=(line,),
        currency="EUR",
        total=PRICE,
        payment_token="tok_visa",
    )


async def _json(response: aiohttp.ClientResponse, expected: int) -> Any:
    if response.status != expected:
        raise RuntimeError(
            f"{response.method} {response.url}: {response.status} {await response.text()}"
        )
    return await response.json()


class EdgeClient:
    """The benchmark's own edge (``benchmarks.edge.EdgeServer``), logged in as its admin."""

    def __init__(self, session: aiohttp.ClientSession, url: str, password: str) -> None:
        self.session = session
        self.api = f"{url}/api/v1"
        self.password = password
        self.authorization: dict[str, str] = {}

    async def log_in(self) -> None:
        async with self.session.post(
            f"{self.api}/auth/login", json={"email": ADMIN_EMAIL, "password": self.password}
        ) as response:
            token = (await _json(response, 200))["access_token"]
        self.authorization = {"Authorization": f"Bearer {token}"}

    async def keep_logged_in(self) -> None:
        while True:
            await asyncio.sleep(LOGIN_EVERY_SECONDS)
            await self.log_in()

    async def my_id(self) -> UUID:
        async with self.session.get(f"{self.api}/users/me", headers=self.authorization) as reply:
            return UUID((await _json(reply, 200))["id"])

    async def create_product(self) -> UUID:
        body = {
            "sku": f"SOAK-{uuid.uuid4().hex[:10]}",
            "name": "Soak mug",
            "price": str(PRICE),
            "currency": "EUR",
            "initial_stock": STOCK,
        }
        async with self.session.post(
            f"{self.api}/products", json=body, headers=self.authorization
        ) as response:
            return UUID((await _json(response, 201))["id"])

    async def place_order(self, product: UUID) -> UUID:
        body = {
            "items": [{"product_id": str(product), "quantity": 1}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        }
        headers = {**self.authorization, "Idempotency-Key": uuid.uuid4().hex}
        async with self.session.post(f"{self.api}/orders", json=body, headers=headers) as answer:
            return UUID((await _json(answer, 202))["id"])


# -- Kafka: dead letters, changelogs, consumer groups ---------------------------------------


async def topic_partitions(bootstrap: str, wanted: Callable[[str], bool]) -> list[TopicPartition]:
    """Every partition of the topics whose names ``wanted`` accepts, as the cluster lists them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        names = sorted(name for name in await admin.list_topics() if wanted(name))
        descriptions = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return [
        TopicPartition(description["topic"], partition["partition"])
        for description in descriptions
        for partition in description["partitions"]
    ]


async def dead_letters(bootstrap: str) -> dict[str, int]:
    """Records in every ``*.dlq`` topic, by topic."""
    partitions = await topic_partitions(bootstrap, lambda name: name.endswith(DEAD_LETTER_SUFFIX))
    if not partitions:
        # The stack declares one per topic: none listed means a gate that checks nothing.
        raise GateFailed(f"no *{DEAD_LETTER_SUFFIX} topic listed at {bootstrap}")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        firsts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    counts: dict[str, int] = {}
    for tp in partitions:
        counts[tp.topic] = counts.get(tp.topic, 0) + ends[tp] - firsts[tp]
    return counts


def _is_inventory_changelog(name: str) -> bool:
    return name.startswith(f"{consumer_group('inventory')}-") and name.endswith("-changelog")


async def inventory_changelogs(bootstrap: str) -> dict[str, ChangelogFigures]:
    """Every record of the inventory's changelog topics, from the first to the end offsets."""
    partitions = await topic_partitions(bootstrap, _is_inventory_changelog)
    figures = {tp.topic: ChangelogFigures() for tp in partitions}
    if not partitions:
        raise GateFailed("no inventory changelog topic (conveyor-inventory-*-changelog) listed")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        deadline = time.monotonic() + 600
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading the changelogs took over 600 s; left: {remaining}")
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in batches.items():
                topic = figures[tp.topic]
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    topic.records += 1
                    if record.value is None:
                        topic.tombstones += 1
                    else:
                        topic.largest_bytes = max(topic.largest_bytes, len(record.value))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return figures
    finally:
        await consumer.stop()


# -- the soak -------------------------------------------------------------------------------


class Soak:
    def __init__(
        self,
        console: Console,
        stack: LocalStack,
        orders: int,
        window: int,
        rate: float,
        through_edge: bool,
        edge_only: bool = False,
    ) -> None:
        self.console = console
        self.stack = stack
        self.orders = orders
        self.window = window
        self.rate = rate
        self.through_edge = through_edge or edge_only
        self.edge_only = edge_only
        self.components = Components(stack)
        self.urls = stack.service_urls()
        self.worker_env = {
            "CONVEYOR_STATE_RETENTION_SECONDS": str(RETENTION_SECONDS),
            "CONVEYOR_RETENTION_SWEEP_SECONDS": str(SWEEP_SECONDS),
        }
        self.orders_placed = 0
        self.session_timeout = WorkerSettings().session_timeout_seconds
        self.ratios: list[tuple[str, str, str]] = []

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> None:
        self.console.print(
            f"soak: the processors run with CONVEYOR_STATE_RETENTION_SECONDS="
            f"{RETENTION_SECONDS} and CONVEYOR_RETENTION_SWEEP_SECONDS={SWEEP_SECONDS}: "
            "finished sagas and closed holds go a minute after they end, so what the "
            "processors keep is bounded by the last minute of orders, and a growth over the "
            "run shows as a cost that grows, not as state that had no time to expire. A "
            f"record more than {RETENTION_SECONDS} s old when a stateful processor reads it "
            "is dead-lettered as expired: the offered rate must stay below what they sustain."
        )
        self.components.up(self.worker_env)
        try:
            asyncio.run(self._scenarios())
        finally:
            self.components.down()
        self._print_summary()

    async def _scenarios(self) -> None:
        pool = await asyncpg.create_pool(self.urls.database_url, min_size=1, max_size=3)
        try:
            async with Publisher(self.urls.kafka_bootstrap_servers) as publisher:
                await self._gate_no_dead_letters("before the soak")
                if self.edge_only:
                    await self._report(pool, await self._inject_through_edge(pool))
                    await self._gate_no_dead_letters("after the soak")
                    return
                [probe_product] = await self._create_products(publisher, pool, 1)
                baseline = await self._inject(
                    publisher,
                    pool,
                    "restore baseline",
                    [probe_product],
                    [probe_product] * RESTORE_BASELINE_ORDERS,
                )
                await self._settle(pool, baseline)
                restore_before = await self._restore(publisher, pool, probe_product)

                [hot] = await self._create_products(publisher, pool, 1)
                one = await self._inject(publisher, pool, "one product", [hot], [hot] * self.orders)
                await self._report(pool, one)

                catalog = await self._create_products(publisher, pool, ZIPF_PRODUCTS)
                zipf_label = f"Zipf over {ZIPF_PRODUCTS:,} products"
                zipf = await self._inject(
                    publisher, pool, zipf_label, catalog, zipf_draws(catalog, self.orders)
                )
                await self._report(pool, zipf)

                if self.through_edge:
                    await self._report(pool, await self._inject_through_edge(pool))

                restore_after = await self._restore(publisher, pool, probe_product)
                await self._gate_stock(pool, [probe_product])
                await self._gate_no_dead_letters("after the soak")
        finally:
            await pool.close()
        self._report_restore(restore_before, restore_after)

    # -- scenarios -----------------------------------------------------------------------

    async def _create_products(
        self, publisher: Publisher, pool: asyncpg.Pool, count: int
    ) -> list[UUID]:
        products = [uuid.uuid4() for _ in range(count)]
        await asyncio.gather(
            *(
                publisher.publish(
                    m.UpsertProduct(
                        product_id=product,
                        sku=f"SOAK-{product.hex[:12]}",
                        name="Soak mug",
                        initial_stock=STOCK,
                    )
                )
                for product in products
            )
        )
        await self._wait_stock_rows(pool, products)
        return products

    async def _wait_stock_rows(self, pool: asyncpg.Pool, products: list[UUID]) -> None:
        # The inventory knows a product once its figures reach the read model; an order
        # sent before that would be rejected for want of stock.
        deadline = time.monotonic() + 120
        while True:
            known = await pool.fetchval(
                "SELECT count(*) FROM stock WHERE product_id = ANY($1::uuid[])", products
            )
            if known == len(products):
                return
            if time.monotonic() > deadline:
                raise GateFailed(f"only {known} of {len(products)} new products known in 120 s")
            await asyncio.sleep(0.2)

    async def _inject(
        self,
        publisher: Publisher,
        pool: asyncpg.Pool,
        label: str,
        catalog: list[UUID],
        lines: list[UUID],
    ) -> Injection:
        """One order per entry of ``lines`` (its product, from ``catalog``), at the rate."""
        customer = uuid.uuid4()
        orders = [_place_order(customer, product) for product in lines]
        injection = Injection(
            label,
            customer,
            catalog,
            [order.order_id for order in orders],
            [0.0] * len(orders),
        )

        async def send(i: int) -> None:
            injection.sent_at[i] = time.time()
            await publisher.publish(orders[i])

        await self._run_injection(pool, injection, send)
        return injection

    async def _inject_through_edge(self, pool: asyncpg.Pool) -> Injection:
        password = secrets.token_urlsafe(16)
        server = EdgeServer(
            self.urls,
            password,
            without_kafka=False,
            log_path=self.stack.settings.logs_dir / "soak-edge.log",
        )
        await asyncio.to_thread(server.start)
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                edge = EdgeClient(session, server.url, password)
                await edge.log_in()
                product = await edge.create_product()
                await self._wait_stock_rows(pool, [product])
                injection = Injection(
                    "one product, through the edge",
                    await edge.my_id(),
                    [product],
                    [None] * self.orders,
                    [0.0] * self.orders,
                )

                async def send(i: int) -> None:
                    injection.sent_at[i] = time.time()
                    injection.order_ids[i] = await edge.place_order(product)

                logins = asyncio.create_task(edge.keep_logged_in())
                try:
                    await self._run_injection(pool, injection, send)
                finally:
                    logins.cancel()
                return injection
        finally:
            await asyncio.to_thread(server.stop)

    async def _run_injection(
        self,
        pool: asyncpg.Pool,
        injection: Injection,
        send: Callable[[int], Coroutine[Any, Any, None]],
    ) -> None:
        count = len(injection.order_ids)
        self.console.print(
            f"soak: {injection.label}: {count:,} orders at {self.rate:g}/s offered "
            f"(about {_duration(count / self.rate)}), a line every {self.window:,} ..."
        )
        began = time.monotonic()

        async def progress(sent: int) -> None:
            done = await self._terminal_count(pool, injection.customer)
            self.console.print(
                f"  {injection.label}: {sent:,}/{count:,} sent, {done:,} terminal, "
                f"{sent - done:,} pending, {time.monotonic() - began:.0f} s"
            )

        await open_loop(count, self.rate, send, self.window, progress)
        self.orders_placed += count
        await self._wait_terminal(pool, injection, began)

    async def _terminal_count(self, pool: asyncpg.Pool, customer: UUID) -> int:
        done: int = await pool.fetchval(
            "SELECT count(*) FROM orders WHERE user_id = $1 AND status <> 'pending'", customer
        )
        return done

    async def _wait_terminal(self, pool: asyncpg.Pool, injection: Injection, began: float) -> None:
        """Gate: every order sent is terminal; fails once none became so for a while."""
        count = len(injection.order_ids)
        last_done, last_change, last_line = -1, time.monotonic(), time.monotonic()
        while True:
            done = await self._terminal_count(pool, injection.customer)
            now = time.monotonic()
            if done == count:
                return
            if done != last_done:
                last_done, last_change = done, now
            elif now - last_change > STALL_SECONDS:
                letters = await dead_letters(self.urls.kafka_bootstrap_servers)
                raise GateFailed(
                    f"{injection.label}: {count - done:,} of {count:,} orders still pending, "
                    f"none finished in the last {STALL_SECONDS:.0f} s; dead letters: "
                    f"{letters or 'none'} (expired ones mean the processors fell more than "
                    f"{RETENTION_SECONDS} s behind: lower --rate)"
                )
            if now - last_line >= PROGRESS_SECONDS:
                last_line = now
                self.console.print(
                    f"  {injection.label}: waiting, {done:,}/{count:,} terminal, "
                    f"{now - began:.0f} s"
                )
            await asyncio.sleep(1.0)

    async def _settle(self, pool: asyncpg.Pool, injection: Injection) -> None:
        """The gates that follow every scenario, once every order is terminal."""
        await self._gate_stock(pool, injection.products)
        await self._gate_no_dead_letters(f"after {injection.label}")

    async def _report(self, pool: asyncpg.Pool, injection: Injection) -> None:
        await self._settle(pool, injection)
        outcomes = await self._outcomes(pool, injection)
        figures = window_figures(outcomes, injection.sent_at, self.window)
        self._print_windows(injection, figures)
        ratio = completion_ratio(figures, self.window)
        self.console.print(
            f"{injection.label}: completion rate of the last window ÷ the first: "
            f"[bold]{ratio:.2f}[/] (goal ≥ 0.9)"
        )
        self.ratios.append(
            (f"{injection.label}: completion rate, last window ÷ first", f"{ratio:.2f}", "≥ 0.9")
        )
        changelogs = await inventory_changelogs(self.urls.kafka_bootstrap_servers)
        largest = max((f.largest_bytes for f in changelogs.values()), default=0)
        self.ratios.append(
            (
                f"{injection.label}: largest inventory changelog record",
                f"{largest:,} B",
                "a few KiB at most",
            )
        )
        self._print_state(injection.label, changelogs, await asyncio.to_thread(self._scrape))

    async def _outcomes(self, pool: asyncpg.Pool, injection: Injection) -> list[Outcome]:
        rows = await pool.fetch(
            "SELECT id, status, extract(epoch FROM created_at) AS accepted, "
            "extract(epoch FROM updated_at) AS terminal FROM orders WHERE user_id = $1",
            injection.customer,
        )
        by_id = {
            row["id"]: Outcome(row["status"], float(row["accepted"]), float(row["terminal"]))
            for row in rows
        }
        missing = [i for i in injection.order_ids if i not in by_id]
        if missing:
            raise GateFailed(f"{injection.label}: {len(missing)} orders have no row in orders")
        return [by_id[order_id] for order_id in injection.order_ids]

    # -- gates ---------------------------------------------------------------------------

    async def _gate_stock(self, pool: asyncpg.Pool, products: list[UUID]) -> None:
        """initial = available + reserved + sold, nothing reserved, sold = confirmed lines.

        The read model gets the last StockChanged after the order's terminal event, so the
        figures are given a while to arrive before the gate fails.
        """
        deadline = time.monotonic() + 120
        while True:
            broken = await self._stock_mismatches(pool, products)
            if not broken:
                return
            if time.monotonic() > deadline:
                raise GateFailed(
                    f"stock equation broken for {len(broken)} of {len(products)} products "
                    f"(initial {STOCK}); first ones: " + "; ".join(broken[:5])
                )
            await asyncio.sleep(0.5)

    async def _stock_mismatches(self, pool: asyncpg.Pool, products: list[UUID]) -> list[str]:
        stock = await pool.fetch(
            "SELECT product_id, available, reserved, sold FROM stock "
            "WHERE product_id = ANY($1::uuid[])",
            products,
        )
        sold_lines = await pool.fetch(
            "SELECT i.product_id, sum(i.quantity) AS quantity FROM order_items i "
            "JOIN orders o ON o.id = i.order_id "
            "WHERE o.status = 'confirmed' AND i.product_id = ANY($1::uuid[]) "
            "GROUP BY i.product_id",
            products,
        )
        confirmed = {row["product_id"]: row["quantity"] for row in sold_lines}
        broken = [f"{product}: no stock row" for product in set(products) - {r[0] for r in stock}]
        for row in stock:
            total = row["available"] + row["reserved"] + row["sold"]
            sold_by_orders = confirmed.get(row["product_id"], 0)
            if total != STOCK or row["reserved"] != 0 or row["sold"] != sold_by_orders:
                broken.append(
                    f"{row['product_id']}: available {row['available']} reserved "
                    f"{row['reserved']} sold {row['sold']} (confirmed lines {sold_by_orders})"
                )
        return broken

    async def _gate_no_dead_letters(self, when: str) -> None:
        letters = {
            topic: count
            for topic, count in (await dead_letters(self.urls.kafka_bootstrap_servers)).items()
            if count
        }
        if letters:
            raise GateFailed(f"dead letters {when}: {letters}")

    # -- restore -------------------------------------------------------------------------

    async def _restore(
        self, publisher: Publisher, pool: asyncpg.Pool, product: UUID
    ) -> RestoreFigures:
        """SIGKILL the stateful workers, delete their local state, restart, time it."""
        after = self.orders_placed
        self.console.print(
            f"soak: restore after {after:,} orders: kill -9 {' and '.join(STATEFUL)}, "
            "delete their RocksDB state, restart ..."
        )
        records = self.components.state.load()
        declared = {c.name: c for c in self.components.declared()}
        for name in STATEFUL:
            # SIGKILL through the stack's own stop, which also reaps the child.
            await asyncio.to_thread(processes.stop, records[name], signal.SIGKILL, 10)
        # Kafka's failure detection, not the restore: waited out before the clock starts.
        # (aiokafka 0.14 cannot decode Kafka 4's DescribeGroups answer, so the groups'
        # members cannot be watched leaving.) The workers inherit this process's settings.
        await asyncio.sleep(self.session_timeout + SESSION_TIMEOUT_MARGIN_SECONDS)
        for name in STATEFUL:
            shutil.rmtree(Path(declared[name].settings["CONVEYOR_DATA_DIR"]) / name)
        logs = {name: Path(records[name].log_file) for name in STATEFUL}
        offsets = {name: log.stat().st_size for name, log in logs.items()}
        began = time.monotonic()
        ready = asyncio.create_task(self._wait_ready(logs, offsets, began))
        try:
            await asyncio.to_thread(self.components.up, self.worker_env)
            # Placed at once: it waits in Kafka until the restarted workers process again.
            probe = _place_order(uuid.uuid4(), product)
            await publisher.publish(probe)
            status = await self._wait_probe(pool, probe.order_id)
            probe_seconds = time.monotonic() - began
            ready_seconds = await ready
        finally:
            ready.cancel()
        if status != "confirmed":
            raise GateFailed(
                f"the probe order after the restore is {status}: the restored inventory "
                f"lost product {product}?"
            )
        figures = RestoreFigures(after, ready_seconds, probe_seconds)
        self.console.print(
            f"  restore after {after:,} orders: probe terminal {probe_seconds:.1f} s after "
            f"the restart (both workers ready at {ready_seconds:.1f} s)"
        )
        return figures

    async def _wait_ready(
        self, logs: dict[str, Path], offsets: dict[str, int], began: float
    ) -> float:
        pending = dict(logs)
        deadline = time.monotonic() + 300
        while pending:
            for name, log in list(pending.items()):
                with log.open("rb") as text:
                    text.seek(offsets[name])
                    if READY_LINE.encode() in text.read():
                        del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sorted(pending)} not ready 300 s after the restart")
            await asyncio.sleep(0.1)
        return time.monotonic() - began

    async def _wait_probe(self, pool: asyncpg.Pool, order_id: UUID) -> str:
        deadline = time.monotonic() + 300
        while True:
            status: str | None = await pool.fetchval(
                "SELECT status FROM orders WHERE id = $1", order_id
            )
            if status is not None and status != "pending":
                return status
            if time.monotonic() > deadline:
                raise GateFailed("the probe order is not terminal 300 s after the restart")
            await asyncio.sleep(0.05)

    # -- output --------------------------------------------------------------------------

    def _scrape(self) -> dict[tuple[str, str], dict[str, float]]:
        """The table gauges of the stateful workers, by (processor, table)."""
        wanted = {
            "conveyor_table_entries": "entries",
            "conveyor_table_bytes": "bytes",
            "conveyor_changelog_record_max_bytes": "largest written",
        }
        gauges: dict[tuple[str, str], dict[str, float]] = {}
        for component in self.components.declared():
            if component.name not in STATEFUL:
                continue
            text = httpx.get(self.components.health_url(component), timeout=5).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in wanted:
                        key = (sample.labels["processor"], sample.labels["table"])
                        gauges.setdefault(key, {})[wanted[sample.name]] = sample.value
        return gauges

    def _print_windows(self, injection: Injection, figures: list[WindowFigures]) -> None:
        table = Table(
            title=f"{injection.label}: {len(injection.order_ids):,} orders offered at "
            f"{self.rate:g}/s, by window of {self.window:,} (from PostgreSQL's orders rows)"
        )
        for column in (
            "orders",
            "sent/s",
            "completed/s",
            "p50 accepted→terminal",
            "p95",
            "p95 sent→terminal",
            "rejected",
        ):
            table.add_column(column, justify="right", no_wrap=True)
        for f in figures:
            table.add_row(
                f"{f.first:,} to {f.last:,}",
                f"{f.sent_per_second:.1f}",
                f"{f.completed_per_second:.1f}",
                f"{f.p50_ms:.0f} ms",
                f"{f.p95_ms:.0f} ms",
                f"{f.p95_since_sent_ms:.0f} ms",
                str(f.rejected),
            )
        self.console.print(table)

    def _print_state(
        self,
        label: str,
        changelogs: dict[str, ChangelogFigures],
        gauges: dict[tuple[str, str], dict[str, float]],
    ) -> None:
        table = Table(
            title=f"{label}: what the stateful processors hold and write",
            caption="entries, bytes: what each worker holds now; largest written: since the "
            "worker started (its metrics); changelog: read from the first offset to the end",
        )
        table.add_column("table", no_wrap=True)
        for column in (
            "entries",
            "bytes",
            "largest written",
            "changelog records",
            "tombstones",
            "largest in changelog",
        ):
            table.add_column(column, justify="right", no_wrap=True)
        keys = sorted(set(gauges) | {self._table_of(topic) for topic in changelogs})
        for processor, name in keys:
            figures = gauges.get((processor, name), {})
            changelog = changelogs.get(f"{consumer_group(processor)}-{name}-changelog")
            shown = {
                field: f"{figures[field]:,.0f}" if field in figures else "—"
                for field in ("entries", "bytes", "largest written")
            }
            table.add_row(
                f"{processor}/{name}",
                shown["entries"],
                shown["bytes"],
                shown["largest written"],
                f"{changelog.records:,}" if changelog else "not read",
                f"{changelog.tombstones:,}" if changelog else "",
                f"{changelog.largest_bytes:,} B" if changelog else "",
            )
        self.console.print(table)

    @staticmethod
    def _table_of(topic: str) -> tuple[str, str]:
        prefix = consumer_group("inventory") + "-"
        return "inventory", topic.removeprefix(prefix).removesuffix("-changelog")

    def _report_restore(self, before: RestoreFigures, after: RestoreFigures) -> None:
        table = Table(
            title="Restore: kill -9 of inventory and orders, their local state deleted, "
            f"restarted after Kafka's session timeout ({self.session_timeout:g} s)"
        )
        for column in (
            "after",
            "restart → both Ready",
            "restart → probe order terminal",
        ):
            table.add_column(column, justify="right", no_wrap=True)
        for figures in (before, after):
            table.add_row(
                f"{figures.after_orders:,} orders",
                f"{figures.ready_seconds:.1f} s",
                f"{figures.probe_seconds:.1f} s",
            )
        self.console.print(table)
        ratio = after.probe_seconds / before.probe_seconds
        self.console.print(
            f"restore after {after.after_orders:,} orders ÷ after {before.after_orders:,}: "
            f"[bold]{ratio:.2f}[/] (goal ≤ 2)"
        )
        self.ratios.append(
            (
                f"restore after {after.after_orders:,} orders ÷ after {before.after_orders:,}",
                f"{ratio:.2f}",
                "≤ 2",
            )
        )

    def _print_summary(self) -> None:
        table = Table(title="Soak: the goals, as measured in this run (every gate passed)")
        table.add_column("measure", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("goal", no_wrap=True)
        for row in self.ratios:
            table.add_row(*row)
        self.console.print(table)


def run(
    console: Console,
    stack: LocalStack,
    orders: int = ORDERS,
    window: int = WINDOW,
    rate: float = RATE,
    through_edge: bool = False,
    edge_only: bool = False,
) -> None:
    """The soak on ``stack``; raises GateFailed when a correctness gate is broken."""
    Soak(console, stack, orders, window, rate, through_edge, edge_only).run()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=ORDERS, help="orders per scenario")
    parser.add_argument("--window", type=int, default=WINDOW, help="orders per table row")
    parser.add_argument("--rate", type=float, default=RATE, help="offered orders per second")
    parser.add_argument(
        "--through-edge",
        action="store_true",
        help="also run the one-product scenario through POST /api/v1/orders",
    )
    parser.add_argument(
        "--edge-only",
        action="store_true",
        help="run only the one-product scenario through the edge (no restore, no Zipf)",
    )
    args = parser.parse_args()
    if args.orders < 2 or args.window < 2 or args.rate <= 0:
        parser.error("--orders and --window must be at least 2, --rate above 0")
    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="conveyor-soak-") as home:
        stack = LocalStack(DevStackSettings.isolated(Path(home)), Console(stderr=True), {})
        try:
            stack.up()
            run(
                console,
                stack,
                args.orders,
                args.window,
                args.rate,
                args.through_edge,
                args.edge_only,
            )
        except GateFailed as failure:
            # The stack's home goes with it; its logs are what explains the failure.
            kept = Path(tempfile.mkdtemp(prefix="conveyor-soak-logs-"))
            shutil.copytree(stack.settings.logs_dir, kept, dirs_exist_ok=True)
            console.print(f"[bold red]soak failed a correctness gate:[/] {failure}")
            console.print(f"the stack's logs are kept in {kept}")
            sys.exit(1)
        finally:
            stack.down(purge=True)


if __name__ == "__main__":
    main()
