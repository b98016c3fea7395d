"""A soak: does an order cost the same on a hot product's 100,000th sale as on its first?

The measurement for "hot products: state bounded by what is open, cost per order flat". The
processors run as real worker processes with a one-minute state retention, and orders
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
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from benchmarks.edge import logged_in_edge
from benchmarks.orderload import (
    STOCK,
    GateFailed,
    Outcome,
    figures_table,
    gate_no_dead_letters,
    gate_stock,
    on_a_stack_of_its_own,
    open_loop,
    outcomes,
    per_second,
    place_order,
    quantile,
    terminal_count,
    topic_partitions,
    wait_products_known,
    wait_terminal,
)
from conveyor.devstack import processes
from conveyor.devstack.components import Components
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.domain.topics import consumer_group
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

RETENTION_SECONDS = 60
SWEEP_SECONDS = 5
# The two processors whose tables must come back from their changelogs after a crash.
STATEFUL = ("inventory", "orders")
READY_LINE = "[^Worker]: Ready"

# A killed worker stays in its consumer group until its session times out; a worker that
# joins before then waits for it. Restore time starts after that wait (and a margin).
SESSION_TIMEOUT_MARGIN_SECONDS = 2.0


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


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def window_figures(
    ended: Sequence[Outcome], sent_at: Sequence[float], window: int
) -> list[WindowFigures]:
    figures = []
    for start in range(0, len(ended), window):
        chunk = ended[start : start + window]
        sent = sent_at[start : start + window]
        terminal = [outcome.terminal for outcome in chunk]
        latencies = [outcome.terminal - outcome.accepted for outcome in chunk]
        since_sent = [o.terminal - s for o, s in zip(chunk, sent, strict=True)]
        figures.append(
            WindowFigures(
                first=start + 1,
                last=start + len(chunk),
                sent_per_second=per_second(len(sent), max(sent) - min(sent)),
                completed_per_second=per_second(len(chunk), max(terminal) - min(terminal)),
                p50_ms=quantile(latencies, 50) * 1000,
                p95_ms=quantile(latencies, 95) * 1000,
                p95_since_sent_ms=quantile(since_sent, 95) * 1000,
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


# -- Kafka: dead letters, changelogs, consumer groups ---------------------------------------


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
                await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "before the soak")
                if self.edge_only:
                    await self._report(pool, await self._inject_through_edge(pool))
                    await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "after the soak")
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
                await gate_stock(pool, [probe_product])
                await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "after the soak")
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
        await wait_products_known(pool, products)
        return products

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
        orders = [place_order(customer, [product]) for product in lines]
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
        log_path = self.stack.settings.logs_dir / "soak-edge.log"
        async with logged_in_edge(self.urls, log_path) as (_, edge):
            product = await edge.create_product()
            await wait_products_known(pool, [product])
            injection = Injection(
                "one product, through the edge",
                await edge.my_id(),
                [product],
                [None] * self.orders,
                [0.0] * self.orders,
            )

            async def send(i: int) -> None:
                injection.sent_at[i] = time.time()
                injection.order_ids[i] = await edge.place_order([product])

            await self._run_injection(pool, injection, send)
            return injection

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
            done = await terminal_count(pool, injection.customer)
            self.console.print(
                f"  {injection.label}: {sent:,}/{count:,} sent, {done:,} terminal, "
                f"{sent - done:,} pending, {time.monotonic() - began:.0f} s"
            )

        await open_loop(count, self.rate, send, self.window, progress)
        self.orders_placed += count
        await self._wait_terminal(pool, injection, began)

    async def _wait_terminal(self, pool: asyncpg.Pool, injection: Injection, began: float) -> None:
        await wait_terminal(
            pool,
            self.console,
            injection.label,
            injection.customer,
            len(injection.order_ids),
            began,
            stalled_hint=f" (dead letters of reason expired would mean the processors fell "
            f"more than {RETENTION_SECONDS} s behind: lower --rate)",
        )

    async def _settle(self, pool: asyncpg.Pool, injection: Injection) -> None:
        """The gates that follow every scenario, once every order is terminal."""
        await gate_stock(pool, injection.products)
        await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, f"after {injection.label}")

    async def _report(self, pool: asyncpg.Pool, injection: Injection) -> None:
        await self._settle(pool, injection)
        ended = await outcomes(pool, injection.label, injection.customer, injection.order_ids)
        figures = window_figures(ended, injection.sent_at, self.window)
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

    # -- gates ---------------------------------------------------------------------------

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
            probe = place_order(uuid.uuid4(), [product])
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
        table = figures_table(
            f"{injection.label}: {len(injection.order_ids):,} orders offered at "
            f"{self.rate:g}/s, by window of {self.window:,} (from PostgreSQL's orders rows)",
            (
                "orders",
                "sent/s",
                "completed/s",
                "p50 accepted→terminal",
                "p95",
                "p95 sent→terminal",
                "rejected",
            ),
            (
                (
                    f"{f.first:,} to {f.last:,}",
                    f"{f.sent_per_second:.1f}",
                    f"{f.completed_per_second:.1f}",
                    f"{f.p50_ms:.0f} ms",
                    f"{f.p95_ms:.0f} ms",
                    f"{f.p95_since_sent_ms:.0f} ms",
                    str(f.rejected),
                )
                for f in figures
            ),
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
    on_a_stack_of_its_own(
        "soak",
        console,
        lambda stack: run(
            console,
            stack,
            args.orders,
            args.window,
            args.rate,
            args.through_edge,
            args.edge_only,
        ),
    )


if __name__ == "__main__":
    main()
