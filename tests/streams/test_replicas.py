"""Orders and inventory as three replicas each, run as a StatefulSet runs them (static group
membership named after the pod, a data directory each), under a steady load of orders while
they scale 1 → 3, restart one after another, and scale back to 1, losing a replica to kill -9
in the middle of that rebalance.

No order is lost or finished twice, stock is conserved, each order gets one email, nothing is
dead-lettered, and a replica restarted quickly with its instance id gets its partitions back
without a rebalance of its group.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from uuid import UUID

import pytest
from aiokafka import TopicPartition

from conveyor.domain import messages as m
from conveyor.domain.codec import decode
from conveyor.domain.topics import consumer_group
from conveyor.infra.groups import STABLE, GroupView, describe_group, remove_static_members
from tests.support.shop import Shop, assert_saga_invariants, read_records
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async
from tests.support.workers import Workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.chaos, pytest.mark.long]

SCALED = ("orders", "inventory")
# Orders placed per second, whatever the processors are going through.
RATE = 10.0
# Long enough for a replica's restart (a SIGTERM, a new process, its join) on a loaded
# two-core machine, which can take most of a minute: the rolling restart must fit in it to
# be rebalance-free (Faust allows at most its request timeout, 90 s). Scaling down removes
# the replicas from their groups rather than waiting for it.
REPLICA_ENV = {"CONVEYOR_SESSION_TIMEOUT_SECONDS": "75"}
TERMINAL = (m.OrderConfirmed, m.OrderRejected)
# What aiokafka logs when a member has joined its group; a rebalance is a new generation.
JOINED = re.compile(r"Joined group '[^']+' \(generation (\d+)\)")


class SteadyLoad:
    """Orders placed at a fixed rate (open loop: a slow processor does not slow it down)."""

    def __init__(self, shop: Shop, stock: dict[UUID, int], rate: float) -> None:
        self.shop = shop
        self.products = list(stock)
        self.rate = rate
        self.orders: list[m.PlaceOrder] = []
        self._rng = random.Random(14)
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[m.PlaceOrder]:
        self._stopped.set()
        assert self._task is not None
        await self._task
        return self.orders

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        sending: list[asyncio.Task[UUID]] = []
        while not self._stopped.is_set():
            product = self._rng.choice(self.products)
            card = self._rng.choice(("tok_visa", "tok_visa", "tok_visa", "tok_chargeDeclined"))
            order = self.shop.order([(product, self._rng.randint(1, 2))], card)
            self.orders.append(order)
            sending.append(asyncio.create_task(self.shop.publisher.publish(order)))
            due = began + len(self.orders) / self.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
        await asyncio.gather(*sending)


async def group(shop: Shop, name: str) -> GroupView:
    return await describe_group(shop.bootstrap, consumer_group(name))


async def settled(shop: Shop, replicas: dict[str, list[str]]) -> dict[str, GroupView]:
    """Each group once it is stable with exactly ``replicas`` holding its partitions."""

    async def views() -> dict[str, GroupView]:
        return {name: await group(shop, name) for name in replicas}

    def as_wanted(found: dict[str, GroupView]) -> bool:
        return all(
            view.settled
            and len(view.members) == len(replicas[name])
            and all(view.member(replica) is not None for replica in replicas[name])
            for name, view in found.items()
        )

    return await eventually_async(
        views, f"the groups settle on {replicas}", until=as_wanted, interval=0.5
    )


def assignments(views: dict[str, GroupView]) -> dict[str, frozenset[TopicPartition]]:
    """Each replica's partitions, by its instance id."""
    return {
        replica: member.partitions
        for name, view in views.items()
        for replica in replicas_of(0, 1, 2)[name]
        if (member := view.member(replica)) is not None
    }


def generation(workers: Workers, replica: str) -> int | None:
    """The generation of its group the replica last joined (its log says so), if any."""
    joined = JOINED.findall(workers.workers[replica].launched.output())
    return int(joined[-1]) if joined else None


def replicas_of(*ordinals: int) -> dict[str, list[str]]:
    return {name: [f"{name}-{ordinal}" for ordinal in ordinals] for name in SCALED}


async def terminal_events(shop: Shop, orders: list[m.PlaceOrder]) -> dict[UUID, set[str]]:
    """Each order's distinct terminal events in orders.events (type and event id): a record
    written again by a replica that died before its commit carries the same event id."""
    ours = {order.order_id for order in orders}
    keys = {str(order_id).encode() for order_id in ours}
    found: dict[UUID, set[str]] = {order_id: set() for order_id in ours}
    for record in await read_records(shop.bootstrap, "orders.events"):
        # Only this test's orders: others of the session write records of their own here,
        # poison ones among them.
        if record.key not in keys:
            continue
        envelope = decode("orders.events", record.key, record.value)
        payload = envelope.payload
        if isinstance(payload, TERMINAL) and payload.order_id in ours:
            found[payload.order_id].add(f"{envelope.type} {envelope.event_id}")
    return found


async def dead_letters(shop: Shop) -> Counter[str]:
    topics = [f"{name}.dlq" for name in ("orders.commands", "orders.replies", "inventory.commands")]
    counted: Counter[str] = Counter()
    for topic in topics:
        counted[topic] = len(await read_records(shop.bootstrap, topic))
    return counted


async def test_replicas_scaled_killed_mid_rebalance_and_rolled_under_load_lose_nothing(
    shop: Shop, workers: Workers, stack: RunningStack
) -> None:
    stock = dict.fromkeys(await asyncio.gather(*(shop.add_product(400) for _ in range(4))), 400)
    letters_before = await dead_letters(shop)
    # The session's own orders and inventory workers (dynamic members) make way.
    await asyncio.to_thread(workers.stop_side_by_side, *SCALED)
    running: set[str] = set()

    def launch(name: str, *ordinals: int) -> list[str]:
        launched = workers.launch_replicas(name, *ordinals, env=REPLICA_ENV)
        running.update(launched)
        return launched

    async def stop(*replicas: str) -> None:
        await asyncio.to_thread(workers.stop_side_by_side, *replicas)
        running.difference_update(replicas)

    try:
        await asyncio.to_thread(workers.wait_ready, *launch("orders", 0), *launch("inventory", 0))
        load = SteadyLoad(shop, stock, RATE)
        load.start()

        # 1 → 3.
        await asyncio.to_thread(
            workers.wait_ready, *launch("orders", 1, 2), *launch("inventory", 1, 2)
        )
        views = await settled(shop, replicas_of(0, 1, 2))

        # A rolling restart: each replica stopped and started again with its instance id,
        # within its session timeout. No rebalance: the restarted replica joins the
        # generation its group was at, the others do not rejoin, and every replica holds
        # the partitions it held.
        for ordinal in (0, 1, 2):
            restarted = [f"{name}-{ordinal}" for name in SCALED]
            generations = {r: generation(workers, r) for r in sorted(running)}
            await stop(*restarted)
            await asyncio.to_thread(
                workers.wait_ready, *launch("orders", ordinal), *launch("inventory", ordinal)
            )
            after = await settled(shop, replicas_of(0, 1, 2))
            assert assignments(after) == assignments(views)
            assert {r: generation(workers, r) for r in sorted(running)} == generations
            views = after

        # 3 → 1, with a replica killed while its group rebalances: replica 2 goes first (a
        # static member does not leave when it stops: it is removed from its group), and
        # while the group hands its partitions out, replica 1 is killed, then removed too.
        await scale_away(shop, workers, running, replicas_of(2))
        await eventually_async(
            lambda: group(shop, "orders"),
            "the orders group is rebalancing",
            until=lambda view: view.state != STABLE,
            interval=0.05,
        )
        workers.kill("orders-1")
        running.discard("orders-1")
        await scale_away(shop, workers, running, replicas_of(1))
        await settled(shop, replicas_of(0))
        orders = await load.stop()
    finally:
        await scale_away(shop, workers, running, replicas_of(0, 1, 2))
        await asyncio.to_thread(workers.start, *SCALED)

    assert len(orders) >= 100
    await assert_saga_invariants(shop, stock, orders)
    terminal = await terminal_events(shop, orders)
    assert {order_id: len(events) for order_id, events in terminal.items()} == dict.fromkeys(
        terminal, 1
    ), {order_id: events for order_id, events in terminal.items() if len(events) != 1}
    assert await dead_letters(shop) == letters_before


async def scale_away(
    shop: Shop, workers: Workers, running: set[str], replicas: dict[str, list[str]]
) -> None:
    """Stop ``replicas`` and remove them from their groups, as a scale-down should (the
    operator does not yet: docs/scaling.md)."""
    stopping = [r for names in replicas.values() for r in names if r in running]
    await asyncio.to_thread(workers.stop_side_by_side, *stopping)
    running.difference_update(stopping)
    for name, gone in replicas.items():
        await remove_static_members(shop.bootstrap, consumer_group(name), gone)
        # Out of the group at once, not after their session timeout.
        left = await group(shop, name)
        assert all(left.member(replica) is None for replica in gone), left
