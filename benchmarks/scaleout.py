"""Scale-out: the orders and inventory processors as replicas, the way a StatefulSet runs them.

`make bench` runs it on the benchmark's own stack; alone: `uv run python -m benchmarks.scaleout`.
Every replica is a real `conveyor worker` process with its pod's name as static group
membership (`orders-0`, `orders-1`, ...) and a data directory of its own. The other
processors run once each. It reports, as ratios against a baseline measured in the same run:

- throughput: the highest sustained rate through 1 replica per processor, then through 3:
  open-loop steps at rising fixed rates, each sustained when its p95 from acceptance to the
  terminal status stays within the throughput benchmark's goal and its orders are all terminal
  soon after the last is sent (the same test as `benchmarks.throughput`). On a small machine
  the replicas share its cores, so no speed-up is to be expected from them;
- rebalances (new generations of the group, as the replica that stays, replica 0, joined
  them) per scale action: 1 → 3, a quick restart of replica 1 with its instance id (static
  membership: expect 0), and 3 → 1 (the replicas scaled away removed from the group, as a
  scale-down should);
- failover: kill -9 of the inventory replica owning a partition, not restarted (a lost
  node), until an order of a product on that partition is processed again, without and with
  ``CONVEYOR_TABLE_STANDBY_REPLICAS=1``. It includes the session timeout Kafka waits before
  it gives the partition to another replica, which then must have the partition's table.

Every run ends with the gates: every order terminal, the stock equation per product, nothing
in a dead-letter topic, one email per order.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import asyncpg
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console

from benchmarks.orderload import (
    STOCK,
    GateFailed,
    figures_table,
    gate_no_dead_letters,
    gate_stock,
    on_a_stack_of_its_own,
    open_loop,
    outcomes,
    place_order,
    quantile,
    wait_one_email_per_order,
    wait_products_known,
    wait_terminal,
)
from benchmarks.throughput import DRAIN_SECONDS, P95_GOAL_MS
from conveyor.devstack import processes
from conveyor.devstack.settings import free_ports
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.domain.topics import DEFAULT_PARTITIONS, consumer_group
from conveyor.infra.groups import GroupView, describe_group, remove_static_members
from conveyor.infra.publisher import Publisher

SCALED = ("orders", "inventory")
# The rest of the saga, once each (recommendations has no part in an order's outcome).
SINGLE = ("payments", "notifications", "projector")
READY_LINE = "[^Worker]: Ready"
# What aiokafka logs when a member has joined its group; each rebalance is a new generation.
JOINED = re.compile(r"Joined group '[^']+' \(generation (\d+)\)")
# The offered rates climbed, orders/s, each held for STEP_SECONDS; the climb stops at the
# first rate not sustained.
RATES = (20.0, 40.0, 60.0, 80.0, 100.0)
STEP_SECONDS = 15.0
PRODUCTS = 20
# Table entries the inventory holds before the failover, so the partition that moves has a
# table to restore (one per product; about a sixth of them on the partition).
PRELOADED_PRODUCTS = 20_000
# A replica's restart on a loaded two-core machine can take longer than Kafka's default
# session timeout, after which its quick restart would rebalance the group after all.
SESSION_TIMEOUT_SECONDS = 45
# The failover runs at Conveyor's default session timeout: Kafka's wait for a dead member.
FAILOVER_SESSION_TIMEOUT_SECONDS = 10
FAILOVER_PARTITION = 0
WAIT_SECONDS = 300.0


@dataclass
class Replica:
    processor: str
    name: str
    record: processes.ProcessRecord
    metrics_port: int
    log_offset: int

    def ready(self) -> bool:
        with Path(self.record.log_file).open("rb") as log:
            log.seek(self.log_offset)
            return READY_LINE.encode() in log.read()

    def generation(self) -> int:
        """The generation of its group this replica last joined (0 before it joins)."""
        with Path(self.record.log_file).open("rb") as log:
            log.seek(self.log_offset)
            joined = JOINED.findall(log.read().decode(errors="replace"))
        return int(joined[-1]) if joined else 0


@dataclass
class Workers:
    """The benchmark's worker processes, by replica name (``orders-0``) or processor name."""

    stack: LocalStack
    console: Console
    running: dict[str, Replica] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.stack.settings.root / "scaleout"

    def launch(self, processor: str, name: str, env: dict[str, str]) -> None:
        [port] = free_ports(1)
        log = self.stack.settings.logs_dir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        environment = {
            **self.stack.service_urls().environment(),
            "CONVEYOR_DATA_DIR": str(self.home / name),
            "CONVEYOR_METRICS_PORT": str(port),
            **env,
        }
        record = processes.spawn(
            name, [sys.executable, "-m", "conveyor", "worker", processor], log, env=environment
        )
        self.running[name] = Replica(processor, name, record, port, offset)

    def launch_replicas(
        self, processor: str, ordinals: Sequence[int], env: dict[str, str] | None = None
    ) -> list[str]:
        names = [f"{processor}-{ordinal}" for ordinal in ordinals]
        for name in names:
            own = {
                "CONVEYOR_GROUP_INSTANCE_ID": name,
                "CONVEYOR_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
                **(env or {}),
            }
            self.launch(processor, name, own)
        return names

    async def wait_ready(self, names: Sequence[str]) -> float:
        began = time.monotonic()
        while not all(self.running[name].ready() for name in names):
            dead = [name for name in names if not self.running[name].record.is_alive()]
            if dead:
                raise GateFailed(f"{dead} exited; see {self.stack.settings.logs_dir}")
            if time.monotonic() - began > WAIT_SECONDS:
                raise GateFailed(f"{names} not ready in {WAIT_SECONDS:.0f} s")
            await asyncio.sleep(0.2)
        return time.monotonic() - began

    async def stop(self, names: Sequence[str], how: int = signal.SIGTERM) -> None:
        stopping = [self.running.pop(name) for name in names if name in self.running]
        await asyncio.gather(
            *(asyncio.to_thread(processes.stop, r.record, how, 60) for r in stopping)
        )

    async def scale_away(self, names: Sequence[str]) -> None:
        """Stop ``names`` and remove them from their groups, as a scale-down should."""
        await self.stop(names)
        bootstrap = self.stack.service_urls().kafka_bootstrap_servers
        for processor in SCALED:
            gone = [name for name in names if name.startswith(f"{processor}-")]
            if gone:
                await remove_static_members(bootstrap, consumer_group(processor), gone)

    async def settled(self, processor: str, replicas: int) -> GroupView:
        bootstrap = self.stack.service_urls().kafka_bootstrap_servers
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            view = await describe_group(bootstrap, consumer_group(processor))
            if view.settled and len(view.members) == replicas:
                return view
            if time.monotonic() > deadline:
                raise GateFailed(f"{processor}: the group never settled on {replicas}: {view}")
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class LadderStep:
    rate: float
    p95_ms: float
    drain_seconds: float

    @property
    def sustained(self) -> bool:
        return self.p95_ms <= P95_GOAL_MS and self.drain_seconds <= DRAIN_SECONDS


@dataclass
class Figures:
    # Replicas per processor: the highest sustained rate (0 when none was), and each step.
    throughput: dict[int, float] = field(default_factory=dict)
    steps: dict[int, list[LadderStep]] = field(default_factory=dict)
    rebalances: dict[str, float] = field(default_factory=dict)
    restart_seconds: float = 0.0
    failover: dict[int, float] = field(default_factory=dict)
    probe_seconds: dict[int, float] = field(default_factory=dict)


class ScaleOut:
    def __init__(self, stack: LocalStack, console: Console, step_seconds: float) -> None:
        self.stack = stack
        self.console = console
        self.step_seconds = step_seconds
        self.workers = Workers(stack, console)
        self.figures = Figures()
        self.customers: list[UUID] = []
        self.placed = 0
        self.products: list[UUID] = []

    def say(self, text: str) -> None:
        self.console.print(f"scaleout: {text}")

    async def run(self) -> Figures:
        urls = self.stack.service_urls()
        pool = await asyncpg.create_pool(urls.database_url, min_size=1, max_size=4)
        try:
            async with Publisher(urls.kafka_bootstrap_servers) as publisher:
                await self._scenario(publisher, pool)
        finally:
            await pool.close()
            await self.workers.stop(list(self.workers.running))
        return self.figures

    async def _scenario(self, publisher: Publisher, pool: asyncpg.Pool) -> None:
        workers = self.workers
        for name in SINGLE:
            workers.launch(name, name, {})
        started = [*SINGLE]
        for processor in SCALED:
            started += workers.launch_replicas(processor, [0])
        self.say(f"starting {', '.join(started)} ...")
        await workers.wait_ready(started)
        await self._preload(publisher, pool)

        await self._ladder(publisher, pool, 1)
        before = self._generations()
        self.say("scaling orders and inventory 1 → 3 ...")
        launched = [n for p in SCALED for n in workers.launch_replicas(p, [1, 2])]
        await workers.wait_ready(launched)
        await self._settled(3)
        self._count_rebalances("1 → 3", before)
        await self._ladder(publisher, pool, 3)

        self.say("restarting replica 1 of each (same instance id) ...")
        before = self._generations()
        began = time.monotonic()
        await workers.stop([f"{p}-1" for p in SCALED])
        restarted = [n for p in SCALED for n in workers.launch_replicas(p, [1])]
        await workers.wait_ready(restarted)
        await self._settled(3)
        self.figures.restart_seconds = time.monotonic() - began
        self._count_rebalances("quick restart", before)
        # The restarted replica rejoined the generation its group was at.
        rejoined = {n: workers.running[n].generation() for n in restarted}
        self.say(f"  the restarted replicas joined generations {rejoined}, replica 0 {before}")

        self.say("scaling 3 → 1 (replicas 1 and 2 removed from the groups) ...")
        before = self._generations()
        await workers.scale_away([f"{p}-{i}" for p in SCALED for i in (1, 2)])
        await self._settled(1)
        self._count_rebalances("3 → 1", before)

        for standbys in (0, 1):
            await self._failover(publisher, pool, standbys)
        await self._gates(pool)

    async def _preload(self, publisher: Publisher, pool: asyncpg.Pool) -> None:
        self.say(f"{PRODUCTS} products for the orders, {PRELOADED_PRODUCTS:,} more in the table")
        self.products = [uuid.uuid4() for _ in range(PRODUCTS)]
        # One product on the failover partition for the probes.
        self.products.append(_product_on_partition(FAILOVER_PARTITION))
        preloaded = [uuid.uuid4() for _ in range(PRELOADED_PRODUCTS)]
        for chunk in range(0, len(preloaded) + len(self.products), 1000):
            batch = (self.products + preloaded)[chunk : chunk + 1000]
            await asyncio.gather(*(publisher.publish(_upsert(p)) for p in batch))
        await wait_products_known(pool, self.products)
        await wait_products_known(pool, preloaded[-1:])

    async def _ladder(self, publisher: Publisher, pool: asyncpg.Pool, replicas: int) -> None:
        """The highest rate ``replicas`` per processor sustain, climbing RATES until one is not."""
        steps = self.figures.steps[replicas] = []
        for rate in RATES:
            step = await self._step(publisher, pool, rate, f"{replicas} replica(s) each")
            steps.append(step)
            if not step.sustained:
                break
        sustained = [step.rate for step in steps if step.sustained]
        self.figures.throughput[replicas] = max(sustained, default=0.0)

    async def _step(
        self, publisher: Publisher, pool: asyncpg.Pool, rate: float, label: str
    ) -> LadderStep:
        """``rate`` orders/s offered open-loop for a step, until every one is terminal."""
        customer = uuid.uuid4()
        self.customers.append(customer)
        count = int(rate * self.step_seconds)
        orders = [place_order(customer, [self.products[i % PRODUCTS]]) for i in range(count)]
        self.say(f"{rate:g} orders/s for {self.step_seconds:g} s through {label} ...")

        async def send(i: int) -> None:
            await publisher.publish(orders[i])

        async def progress(sent: int) -> None:
            if sent == count:
                self.say(f"  {sent:,} sent")

        began = time.monotonic()
        await open_loop(count, rate, send, max(1, count // 4), progress)
        sent_at = time.monotonic()
        await wait_terminal(pool, self.console, label, customer, count, began)
        drained = time.monotonic() - sent_at
        self.placed += count
        ended = await outcomes(pool, label, customer, [order.order_id for order in orders])
        p95_ms = quantile([(o.terminal - o.accepted) * 1000 for o in ended], 95)
        step = LadderStep(rate, p95_ms, drained)
        verdict = "sustained" if step.sustained else "NOT sustained"
        self.say(f"  p95 {p95_ms:.0f} ms, all terminal {drained:.1f} s after the last: {verdict}")
        return step

    async def _failover(self, publisher: Publisher, pool: asyncpg.Pool, standbys: int) -> None:
        workers = self.workers
        self.say(
            f"failover with {standbys} standby replica(s): 3 fresh inventory replicas "
            "(each restores its partitions) ..."
        )
        await workers.scale_away([n for n in list(workers.running) if n.startswith("inventory-")])
        for ordinal in range(3):
            shutil.rmtree(workers.home / f"inventory-{ordinal}", ignore_errors=True)
        env = {
            "CONVEYOR_TABLE_STANDBY_REPLICAS": str(standbys),
            "CONVEYOR_SESSION_TIMEOUT_SECONDS": str(FAILOVER_SESSION_TIMEOUT_SECONDS),
        }
        await workers.wait_ready(workers.launch_replicas("inventory", [0, 1, 2], env))
        view = await workers.settled("inventory", 3)
        # The standbys' copies (and the actives' restores) caught up before the kill.
        self.figures.probe_seconds[standbys] = await self._probe(publisher, pool)
        owner = view.owner_of(TopicPartition("inventory.commands", FAILOVER_PARTITION))
        assert owner is not None
        [victim] = [n for n in workers.running if owner.is_instance(n)]
        self.say(f"  kill -9 {victim}, owner of inventory.commands[{FAILOVER_PARTITION}]")
        began = time.monotonic()
        await workers.stop([victim], signal.SIGKILL)
        seconds = await self._probe(publisher, pool, began)
        self.figures.failover[standbys] = seconds
        self.say(f"  processing again after {seconds:.1f} s")
        survivors = [n for n in workers.running if n.startswith("inventory-")]
        await workers.scale_away([*survivors, victim])
        await workers.wait_ready(workers.launch_replicas("inventory", [0]))
        await workers.settled("inventory", 1)

    async def _probe(
        self, publisher: Publisher, pool: asyncpg.Pool, began: float | None = None
    ) -> float:
        """Seconds from ``began`` (or now) until an order of the failover partition's product
        is terminal."""
        customer = uuid.uuid4()
        self.customers.append(customer)
        began = time.monotonic() if began is None else began
        await publisher.publish(place_order(customer, [self.products[-1]]))
        await wait_terminal(pool, self.console, "probe", customer, 1, began)
        self.placed += 1
        return time.monotonic() - began

    async def _settled(self, replicas: int) -> None:
        for processor in SCALED:
            await self.workers.settled(processor, replicas)

    def _generations(self) -> dict[str, int]:
        return {p: self.workers.running[f"{p}-0"].generation() for p in SCALED}

    def _count_rebalances(self, action: str, before: dict[str, int]) -> None:
        """Generations of each group since ``before``, as replica 0 (which stays) joined them."""
        after = self._generations()
        bumps = {p: after[p] - before[p] for p in SCALED}
        self.figures.rebalances[action] = max(bumps.values())
        self.say(f"  {action}: generation bumps per group: {bumps}")

    async def _gates(self, pool: asyncpg.Pool) -> None:
        self.say("gates: every order terminal, stock conserved, no dead letters, one email each")
        await wait_terminal(
            pool, self.console, "all", self.customers, self.placed, time.monotonic()
        )
        await gate_stock(pool, self.products)
        await gate_no_dead_letters(self.stack.service_urls().kafka_bootstrap_servers, "after it")
        rows = await pool.fetch(
            "SELECT id, status FROM orders WHERE user_id = ANY($1::uuid[])", self.customers
        )
        await wait_one_email_per_order(
            self.stack.maildir, "scaleout", {r["id"]: r["status"] for r in rows}
        )
        self.say("[green]gates passed[/]: nothing pending, stock conserved, no dead letters")


def _upsert(product: UUID) -> m.UpsertProduct:
    return m.UpsertProduct(
        product_id=product, sku=f"SKU-{product.hex[:8]}", name="Widget", initial_stock=STOCK
    )


def _product_on_partition(partition: int) -> UUID:
    """A product whose inventory records go to ``partition``."""
    choose = DefaultPartitioner()
    every = list(range(DEFAULT_PARTITIONS))
    while True:
        product = uuid.uuid4()
        if choose(str(product).encode(), every, every) == partition:
            return product


def report(console: Console, figures: Figures) -> None:
    console.print(
        figures_table(
            f"Scale-out: open-loop steps of {STEP_SECONDS:g} s, sustained while p95 "
            f"accepted→terminal ≤ {P95_GOAL_MS:g} ms and all terminal ≤ {DRAIN_SECONDS:g} s "
            "after the last",
            ("replicas each", "offered/s", "p95 ms", "drained in", "sustained"),
            [
                (
                    str(replicas),
                    f"{step.rate:g}",
                    f"{step.p95_ms:.0f}",
                    f"{step.drain_seconds:.1f} s",
                    "yes" if step.sustained else "no",
                )
                for replicas, steps in figures.steps.items()
                for step in steps
            ],
        )
    )
    one, three = figures.throughput[1], figures.throughput[3]
    console.print(
        figures_table(
            "Scale-out: orders and inventory as replicas (static membership)",
            ("measure", "value", "ratio"),
            [
                ("highest sustained orders/s, 1 replica each", f"{one:g}", "1.00"),
                (
                    "highest sustained orders/s, 3 replicas each",
                    f"{three:g}",
                    f"{three / one:.2f}" if one else "n/a (1 replica sustained none)",
                ),
                *(
                    (f"rebalances, {action}", f"{count:.0f}", "")
                    for action, count in figures.rebalances.items()
                ),
                ("quick restart, stop to settled", f"{figures.restart_seconds:.1f} s", ""),
                *(
                    (
                        f"failover, {standbys} standby",
                        f"{seconds:.1f} s",
                        f"{seconds / figures.failover[0]:.2f}",
                    )
                    for standbys, seconds in figures.failover.items()
                ),
                *(
                    (f"probe order, no failure ({standbys} standby)", f"{s:.2f} s", "")
                    for standbys, s in figures.probe_seconds.items()
                ),
            ],
        )
    )
    console.print(
        f"failover includes the session timeout ({FAILOVER_SESSION_TIMEOUT_SECONDS} s) Kafka "
        "waits before it moves a dead replica's partitions; the rest is the rebalance and "
        "the new owner's restore of the partition's table."
    )


def run(console: Console, stack: LocalStack, step_seconds: float = STEP_SECONDS) -> None:
    report(console, asyncio.run(ScaleOut(stack, console, step_seconds).run()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--step-seconds", type=float, default=STEP_SECONDS, help="how long each rate is held"
    )
    options = parser.parse_args()
    console = Console(width=120)
    on_a_stack_of_its_own(
        "scaleout", console, lambda stack: run(console, stack, options.step_seconds)
    )


if __name__ == "__main__":
    main()
