"""Throughput: the highest order rate the pipeline sustains, and what an order costs.

The processors run as real worker processes on a stack of their own. Orders of one or
two lines over ``PRODUCTS`` products arrive open-loop at a fixed offered rate, never waiting
for earlier ones, one step of ``--step-seconds`` per rate of ``--rates``, rising:

- **pipeline**: PlaceOrder records sent by a raw producer onto orders.commands;
- **through the edge**: POST /api/v1/orders on an edge process of the benchmark's own;
- **the raw chain** (``benchmarks.rawchain``): the same rates with the processors replaced
  by bare aiokafka loops, and on past them (``BASELINE_BEYOND``) until it too fails.

Each climb begins with ``--warmup-seconds`` at its lowest rate that is not counted (the JIT
of Kafka's JVM and every process's caches warm up there).

A rate is *sustained* when the p95 from acceptance to the terminal status stays within
``P95_GOAL_MS`` and every order of the step is terminal within ``DRAIN_SECONDS`` of its last
send (the backlog stays bounded); the steps stop at the first rate that is not. Acceptance
is the send for the pipeline and the edge's own timestamp through the edge.

Over every step it also measures the CPU each process used (psutil, live children
included, so PostgreSQL's backends count), as milliseconds per order.

After every step the gates: every order terminal, the stock equation per product with
nothing reserved, nothing in any dead-letter topic, exactly one email per terminal order.
A broken gate fails the benchmark: its figures would mean nothing.

``python -m benchmarks.throughput [--rates 25,50,100] [--edge-rates 20,50]
[--step-seconds 60]``; ``make bench`` runs it with its defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from rich.console import Console
from rich.table import Table

from benchmarks.cpu import CpuMeter, running_pids
from benchmarks.edge import EdgeServer, logged_in_edge
from benchmarks.orderload import (
    STOCK,
    figures_table,
    gate_no_dead_letters,
    gate_stock,
    on_a_stack_of_its_own,
    open_loop,
    outcomes,
    place_order,
    quantile,
    rising_list,
    terminal_count,
    wait_one_email_per_order,
    wait_products_known,
    wait_terminal,
)
from benchmarks.rawchain import running_chain
from conveyor.devstack.components import Components
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.infra.publisher import Publisher

PIPELINE = "pipeline"
THROUGH_THE_EDGE = "through the edge"
BASELINE = "raw aiokafka chain"
RATES = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0)
EDGE_RATES = (20.0, 50.0, 100.0, 150.0, 200.0, 300.0)
STEP_SECONDS = 60.0
# Held at the lowest rate before each climb and not counted: Kafka's JIT compiles its hot
# paths in its first minute under load (a core's fifth then, on a 2-core machine), and each
# process fills its caches; a climb's first step would be charged for all of it.
WARMUP_SECONDS = 30.0
PRODUCTS = 20
P95_GOAL_MS = 250.0
# The raw chain's climb goes on past the rates given, at these multiples of the highest.
BASELINE_BEYOND = (1.5, 2.0, 3.0, 4.0)
DRAIN_SECONDS = 5.0
SEED = 20_261_201
# What the cost goal adds up: the processors and the services they use, not the outside
# parties (mail sink, payment gateway) or the load generator.
COUNTED_LABELS = (*PROCESSOR_NAMES, "Kafka", "PostgreSQL", "Redis")


@dataclass(frozen=True)
class Step:
    """One rate held for a step: what was offered and what came of it."""

    rate: float
    orders: int
    sent_per_second: float
    p50_ms: float
    p95_ms: float
    drain_seconds: float
    rejected: int
    cpu_ms_per_order: dict[str, float]

    @property
    def sustained(self) -> bool:
        return self.p95_ms <= P95_GOAL_MS and self.drain_seconds <= DRAIN_SECONDS

    def counted_cpu_ms(self) -> float:
        return sum(self.cpu_ms_per_order.get(label, 0.0) for label in COUNTED_LABELS)


def _order_lines(products: Sequence[UUID], rng: random.Random) -> list[UUID]:
    """One or two distinct products, as the issue's traffic had."""
    return rng.sample(list(products), rng.choice((1, 2)))


class Throughput:
    def __init__(
        self,
        console: Console,
        stack: LocalStack,
        rates: Sequence[float],
        edge_rates: Sequence[float],
        step_seconds: float,
        worker_env: dict[str, str],
        with_baseline: bool,
        warmup_seconds: float,
    ) -> None:
        self.warmup_seconds = warmup_seconds
        self.worker_env = worker_env
        self.with_baseline = with_baseline
        self.baseline_pids: dict[str, int] = {}
        self.console = console
        self.stack = stack
        self.rates = rates
        self.edge_rates = edge_rates
        self.step_seconds = step_seconds
        self.urls = stack.service_urls()
        self.components = Components(stack)
        self.rng = random.Random(SEED)
        self.results: dict[str, list[Step]] = {}

    def run(self) -> None:
        self.console.print(
            f"throughput: steps of {self.step_seconds:g} s at rising offered rates; a rate is "
            f"sustained while p95 accepted→terminal ≤ {P95_GOAL_MS:g} ms and every order of "
            f"the step is terminal within {DRAIN_SECONDS:g} s of its last send"
        )
        self.components.up(self.worker_env)
        try:
            asyncio.run(self._scenarios())
        finally:
            self.components.down()
        self._print_summary()

    def _pids(self, edge: EdgeServer | None = None) -> dict[str, int]:
        pids = running_pids(self.stack, self.components, PROCESSOR_NAMES)
        pids.update(self.baseline_pids)
        if edge is not None and edge.launched.process is not None:
            pids["edge"] = edge.launched.process.pid
        return pids

    async def _scenarios(self) -> None:
        pool = await asyncpg.create_pool(self.urls.database_url, min_size=1, max_size=3)
        try:
            await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, "before the run")
            async with Publisher(self.urls.kafka_bootstrap_servers) as publisher:
                products = await self._create_products(publisher, pool)
                self.results[PIPELINE] = await self._climb(
                    pool, PIPELINE, self.rates, self._raw_sender(publisher, products)
                )
                if self.edge_rates:
                    self.results[THROUGH_THE_EDGE] = await self._through_edge(pool)
                if self.with_baseline:
                    self.results[BASELINE] = await self._baseline(pool, publisher)
        finally:
            await pool.close()

    async def _baseline(self, pool: asyncpg.Pool, publisher: Publisher) -> list[Step]:
        """The same climb with the processors replaced by the raw chain, last: its groups
        start at the topics' ends, while the processors' would read what it handled."""
        await asyncio.to_thread(self.components.down)
        with running_chain(self.urls, self.stack.settings.logs_dir) as pids:
            self.baseline_pids = pids
            # Its inventory starts empty: products of its own.
            products = await self._create_products(publisher, pool)
            return await self._climb(
                pool, BASELINE, _beyond(self.rates), self._raw_sender(publisher, products)
            )

    async def _create_products(self, publisher: Publisher, pool: asyncpg.Pool) -> list[UUID]:
        products = [uuid.uuid4() for _ in range(PRODUCTS)]
        for product in products:
            await publisher.publish(
                m.UpsertProduct(
                    product_id=product,
                    sku=f"LOAD-{product.hex[:12]}",
                    name="Load mug",
                    initial_stock=STOCK,
                )
            )
        await wait_products_known(pool, products)
        return products

    def _raw_sender(
        self, publisher: Publisher, products: Sequence[UUID]
    ) -> Callable[[UUID], Coroutine[Any, Any, UUID]]:
        async def send(customer: UUID) -> UUID:
            order = place_order(customer, _order_lines(products, self.rng))
            await publisher.publish(order)
            return order.order_id

        return send

    async def _through_edge(self, pool: asyncpg.Pool) -> list[Step]:
        log_path = self.stack.settings.logs_dir / "throughput-edge.log"
        async with logged_in_edge(self.urls, log_path) as (server, edge):
            products = [await edge.create_product() for _ in range(PRODUCTS)]
            await wait_products_known(pool, products)

            async def send(_: UUID) -> UUID:
                return await edge.place_order(_order_lines(products, self.rng))

            # Every order is the admin's: the edge places them for the caller.
            return await self._climb(
                pool, THROUGH_THE_EDGE, self.edge_rates, send, await edge.my_id(), server
            )

    async def _climb(
        self,
        pool: asyncpg.Pool,
        label: str,
        rates: Sequence[float],
        send: Callable[[UUID], Coroutine[Any, Any, UUID]],
        customer: UUID | None = None,
        edge: EdgeServer | None = None,
    ) -> list[Step]:
        steps: list[Step] = []
        if self.warmup_seconds > 0:
            warmup = await self._step(
                pool,
                f"{label}, warming up at {rates[0]:g}/s (not counted)",
                rates[0],
                send,
                customer,
                edge,
                self.warmup_seconds,
            )
            self.console.print(
                f"  {label} warmed up: p95 {warmup.p95_ms:.0f} ms, "
                f"{warmup.counted_cpu_ms():.1f} ms of CPU per order"
            )
        for rate in rates:
            step = await self._step(
                pool, f"{label} at {rate:g}/s", rate, send, customer, edge, self.step_seconds
            )
            steps.append(step)
            verdict = "sustained" if step.sustained else "NOT sustained"
            self.console.print(
                f"  {label} at {rate:g}/s: p95 {step.p95_ms:.0f} ms, drained "
                f"{step.drain_seconds:.1f} s after the last send: {verdict}"
            )
            if not step.sustained:
                break
        return steps

    async def _step(
        self,
        pool: asyncpg.Pool,
        label: str,
        rate: float,
        send: Callable[[UUID], Coroutine[Any, Any, UUID]],
        customer: UUID | None,
        edge: EdgeServer | None,
        seconds: float,
    ) -> Step:
        count = max(2, round(rate * seconds))
        # Through the edge the orders are the caller's; the step is told apart by its ids.
        own_customer = customer or uuid.uuid4()
        already = await terminal_count(pool, own_customer)
        order_ids: list[UUID | None] = [None] * count
        sent_at = [0.0] * count
        self.console.print(f"throughput: {label}: {count:,} orders ...")

        async def one(i: int) -> None:
            sent_at[i] = time.time()
            order_ids[i] = await send(own_customer)

        async def progress(sent: int) -> None:
            done = await terminal_count(pool, own_customer) - already
            self.console.print(f"  {label}: {sent:,}/{count:,} sent, {done:,} terminal")

        meter = CpuMeter(self._pids(edge))
        meter.start()
        began = time.monotonic()
        await open_loop(count, rate, one, max(1, round(rate * 10)), progress)
        last_sent = time.monotonic()
        await wait_terminal(pool, self.console, label, own_customer, already + count, began)
        drained = time.monotonic() - last_sent
        cpu = meter.used()
        ended = await outcomes(pool, label, own_customer, order_ids)
        accepted_from = [outcome.accepted for outcome in ended] if customer is not None else sent_at
        latencies = [
            outcome.terminal - accepted
            for outcome, accepted in zip(ended, accepted_from, strict=True)
        ]
        await self._gates(pool, label, own_customer, order_ids)
        return Step(
            rate=rate,
            orders=count,
            sent_per_second=(count - 1) / (max(sent_at) - min(sent_at)),
            p50_ms=quantile(latencies, 50) * 1000,
            p95_ms=quantile(latencies, 95) * 1000,
            drain_seconds=drained,
            rejected=sum(outcome.status == "rejected" for outcome in ended),
            cpu_ms_per_order={label: seconds * 1000 / count for label, seconds in cpu.items()},
        )

    async def _gates(
        self, pool: asyncpg.Pool, label: str, customer: UUID, order_ids: list[UUID | None]
    ) -> None:
        ids = [order_id for order_id in order_ids if order_id is not None]
        rows = await pool.fetch("SELECT id, status FROM orders WHERE id = ANY($1::uuid[])", ids)
        products = await pool.fetch(
            "SELECT DISTINCT product_id FROM order_items WHERE order_id = ANY($1::uuid[])", ids
        )
        await gate_stock(pool, [row["product_id"] for row in products])
        await gate_no_dead_letters(self.urls.kafka_bootstrap_servers, f"after {label}")
        ended = {row["id"]: row["status"] for row in rows}
        await wait_one_email_per_order(self.stack.maildir, label, ended)

    # -- output --------------------------------------------------------------------------

    def _print_summary(self) -> None:
        for label, steps in self.results.items():
            table = figures_table(
                f"Throughput, {label}: {self.step_seconds:g} s per offered rate",
                (
                    "offered",
                    "sent/s",
                    "p50 accepted→terminal",
                    "p95",
                    "drained after",
                    "rejected",
                    "CPU ms/order",
                    "sustained",
                ),
                (
                    (
                        f"{step.rate:g}/s",
                        f"{step.sent_per_second:.1f}",
                        f"{step.p50_ms:.0f} ms",
                        f"{step.p95_ms:.0f} ms",
                        f"{step.drain_seconds:.1f} s",
                        str(step.rejected),
                        f"{step.counted_cpu_ms():.1f}",
                        "yes" if step.sustained else "no",
                    )
                    for step in steps
                ),
            )
            self.console.print(table)
            sustained = [step.rate for step in steps if step.sustained]
            best = f"{max(sustained):g}/s" if sustained else "none of the rates tried"
            self.console.print(f"{label}: highest sustained rate [bold]{best}[/]")
        self._print_cost()

    def _highest_sustained(self, label: str) -> Step | None:
        sustained = [step for step in self.results.get(label, []) if step.sustained]
        return sustained[-1] if sustained else None

    def _costed_step(self, label: str) -> Step | None:
        """The highest sustained step, or else the lowest one tried: where the cost went
        matters most when no rate was sustained."""
        steps = self.results.get(label, [])
        return self._highest_sustained(label) or (steps[0] if steps else None)

    def _steps_at_one_rate(self) -> tuple[Step, Step] | None:
        """The pipeline's and the chain's steps at one offered rate: the highest both
        sustained, else the lowest both ran. An order's CPU falls as the rate rises (each
        batch's fixed costs are shared by more orders), so only steps at one rate compare."""
        pipeline = {step.rate: step for step in self.results.get(PIPELINE, [])}
        chain = {step.rate: step for step in self.results.get(BASELINE, [])}
        common = sorted(pipeline.keys() & chain.keys())
        if not common:
            return None
        both_sustained = [
            rate for rate in common if pipeline[rate].sustained and chain[rate].sustained
        ]
        rate = both_sustained[-1] if both_sustained else common[0]
        return pipeline[rate], chain[rate]

    def _print_cost(self) -> None:
        """CPU per order by process: the pipeline and the chain at one rate when both ran,
        else each at its highest sustained rate (else its lowest)."""
        at_one_rate = self._steps_at_one_rate()
        compared = (
            dict(zip((PIPELINE, BASELINE), at_one_rate, strict=True))
            if at_one_rate is not None
            else {
                label: step
                for label in (PIPELINE, BASELINE)
                if (step := self._costed_step(label)) is not None
            }
        )
        if not compared:
            return
        table = Table(
            title="CPU per order",
            caption="the sum is the processors, Kafka, PostgreSQL and Redis; the mail sink and "
            "payment gateway are outside parties, the load generator is this process",
        )
        table.add_column("process", no_wrap=True)
        for label, step in compared.items():
            held = "" if step.sustained else ", not sustained"
            table.add_column(f"{label} at {step.rate:g}/s{held}, ms", justify="right")
        processes = sorted({name for step in compared.values() for name in step.cpu_ms_per_order})
        for name in processes:
            table.add_row(
                name,
                *(f"{step.cpu_ms_per_order.get(name, 0.0):.2f}" for step in compared.values()),
            )
        table.add_row(
            "[bold]sum[/]", *(f"{step.counted_cpu_ms():.2f}" for step in compared.values())
        )
        self.console.print(table)
        if at_one_rate is not None:
            pipeline_step, chain_step = at_one_rate
            self.console.print(
                f"CPU per order at {pipeline_step.rate:g}/s: the pipeline "
                f"[bold]{pipeline_step.counted_cpu_ms() / chain_step.counted_cpu_ms():.2f}[/] "
                "times the chain's"
            )
        if PIPELINE in self.results and BASELINE in self.results:
            self._print_rate_ratio()

    def _print_rate_ratio(self) -> None:
        pipeline, chain = self._highest_sustained(PIPELINE), self._highest_sustained(BASELINE)
        if pipeline is not None and chain is not None:
            self.console.print(
                f"pipeline ÷ {BASELINE}, highest sustained rate: "
                f"[bold]{pipeline.rate / chain.rate:.2f}[/] (goal ≥ 0.5)"
            )
            return
        unsustained = [
            label for label, step in ((PIPELINE, pipeline), (BASELINE, chain)) if not step
        ]
        what = (
            "neither sustained any of the rates tried"
            if len(unsustained) == 2
            else f"the {unsustained[0]} sustained none of the rates tried"
        )
        self.console.print(
            f"pipeline ÷ {BASELINE}, highest sustained rate: no ratio, {what}; offer lower "
            "rates (--rates)"
        )


def _beyond(rates: Sequence[float]) -> list[float]:
    """``rates``, then higher ones: the chain climbs until it fails, else a ratio against the
    highest rate offered would flatter the pipeline."""
    highest = max(rates)
    return [*rates, *(highest * factor for factor in BASELINE_BEYOND)]


def run(
    console: Console,
    stack: LocalStack,
    rates: Sequence[float] = RATES,
    edge_rates: Sequence[float] = EDGE_RATES,
    step_seconds: float = STEP_SECONDS,
    worker_env: dict[str, str] | None = None,
    with_baseline: bool = True,
    warmup_seconds: float = WARMUP_SECONDS,
) -> None:
    """The benchmark on ``stack``; raises GateFailed when a correctness gate is broken."""
    Throughput(
        console,
        stack,
        rates,
        edge_rates,
        step_seconds,
        worker_env or {},
        with_baseline,
        warmup_seconds,
    ).run()


_rates = rising_list(float, "rates", "25,50")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rates", type=_rates, default=list(RATES), help="pipeline rates")
    parser.add_argument(
        "--edge-rates",
        type=_rates,
        default=list(EDGE_RATES),
        help="rates through the edge",
    )
    parser.add_argument("--no-edge", action="store_true", help="skip the edge's steps")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the raw aiokafka chain's steps"
    )
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=WARMUP_SECONDS,
        help="held at the lowest rate before each climb, not counted (0: none)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the processors, e.g. CONVEYOR_BATCH_SECONDS=0.01 (repeatable)",
    )
    args = parser.parse_args()
    console = Console(width=120)
    edge_rates = [] if args.no_edge else args.edge_rates
    worker_env = dict(setting.split("=", 1) for setting in args.worker_env)
    if worker_env:
        console.print(f"throughput: the processors run with {worker_env}")
    on_a_stack_of_its_own(
        "throughput",
        console,
        lambda stack: run(
            console,
            stack,
            args.rates,
            edge_rates,
            args.step_seconds,
            worker_env,
            with_baseline=not args.no_baseline,
            warmup_seconds=args.warmup_seconds,
        ),
    )


if __name__ == "__main__":
    main()
