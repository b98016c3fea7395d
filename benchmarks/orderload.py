"""What the order benchmarks share: orders sent open-loop, their outcomes, and the gates.

A benchmark's figures mean something only when the run was correct, so each one ends with
the same gates: every order terminal, the stock equation per product with nothing left
reserved, nothing in any dead-letter topic, and (where emails are counted) one email per
terminal order.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.domain import messages as m
from conveyor.domain.topics import DEAD_LETTER_SUFFIX
from conveyor.streams.processors.notifications import notification_id_for

PRICE = Decimal("9.99")
# Never the limit: a rejection for want of stock would be a different saga.
STOCK = 10**9
# Sends under way at once: more than the offered rate ever needs (a send takes a few ms),
# so the schedule, not the sender, sets the pace; a Kafka stall cannot pile up without end.
MAX_IN_FLIGHT = 64
# Waiting for the saga to finish fails when no order became terminal for this long.
STALL_SECONDS = 120.0
PROGRESS_SECONDS = 10.0


class GateFailed(Exception):
    """A correctness gate is broken; the figures would mean nothing."""


@dataclass(frozen=True)
class Outcome:
    """One order's row in PostgreSQL at the end."""

    status: str
    accepted: float  # created_at: OrderPlaced's time (or the edge's, through the edge)
    terminal: float  # updated_at: the terminal event's time


def quantile(values: Sequence[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def per_second(events: int, seconds: float) -> float:
    # Intervals between the first and the last event: a steady stream at r gives exactly r.
    return (events - 1) / seconds if events > 1 and seconds > 0 else float("nan")


def place_order(customer: UUID, products: Sequence[UUID], quantity: int = 1) -> m.PlaceOrder:
    """An order of ``quantity`` of each of ``products``, paid by a card that authorizes."""
    lines = tuple(
        m.OrderLine(
            product_id=product, quantity=quantity, unit_price=PRICE, subtotal=PRICE * quantity
        )
        for product in products
    )
    return m.PlaceOrder(
        order_id=uuid.uuid4(),
        user_id=customer,
        customer_email="load@example.com",
        items=lines,
        currency="EUR",
        total=sum((line.subtotal for line in lines), Decimal(0)),
        payment_token="tok_visa",
    )


async def open_loop(
    count: int,
    rate: float,
    send: Callable[[int], Coroutine[Any, Any, None]],
    every: int,
    progress: Callable[[int], Coroutine[Any, Any, None]],
) -> None:
    """Call ``send(i)`` at ``start + i / rate`` for each i, never waiting for earlier sends.

    ``progress(sent)`` runs beside the sends after every ``every`` of them. A send that
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
            if (i + 1) % every == 0 or i + 1 == count:
                tasks.create_task(progress(i + 1))


async def wait_products_known(pool: asyncpg.Pool, products: Sequence[UUID]) -> None:
    """Until the inventory knows each of ``products``: their figures reached the read model.

    An order sent before that would be rejected for want of stock.
    """
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


def figures_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table of figures: ``columns`` right-aligned, one row per entry of ``rows``."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


# -- what became of the orders ----------------------------------------------------------------


async def terminal_count(pool: asyncpg.Pool, customers: UUID | Sequence[UUID]) -> int:
    """Terminal orders of one customer, or of all of several."""
    wanted = [customers] if isinstance(customers, UUID) else list(customers)
    done: int = await pool.fetchval(
        "SELECT count(*) FROM orders WHERE user_id = ANY($1::uuid[]) AND status <> 'pending'",
        wanted,
    )
    return done


async def wait_terminal(
    pool: asyncpg.Pool,
    console: Console,
    label: str,
    customers: UUID | Sequence[UUID],
    count: int,
    began: float,
    stalled_hint: str = "",
) -> None:
    """Gate: all ``count`` orders of ``customers`` terminal; fails once none became so for
    a while (``stalled_hint`` says what that may mean)."""
    last_done, last_change, last_line = -1, time.monotonic(), time.monotonic()
    while True:
        done = await terminal_count(pool, customers)
        now = time.monotonic()
        if done == count:
            return
        if done != last_done:
            last_done, last_change = done, now
        elif now - last_change > STALL_SECONDS:
            raise GateFailed(
                f"{label}: {count - done:,} of {count:,} orders still pending, none finished "
                f"in the last {STALL_SECONDS:.0f} s{stalled_hint}"
            )
        if now - last_line >= PROGRESS_SECONDS:
            last_line = now
            console.print(f"  {label}: waiting, {done:,}/{count:,} terminal, {now - began:.0f} s")
        await asyncio.sleep(1.0)


async def outcomes(
    pool: asyncpg.Pool, label: str, customer: UUID, order_ids: Sequence[UUID | None]
) -> list[Outcome]:
    """The outcome of each of ``order_ids`` (all of ``customer``'s), in their order."""
    rows = await pool.fetch(
        "SELECT id, status, extract(epoch FROM created_at) AS accepted, "
        "extract(epoch FROM updated_at) AS terminal FROM orders WHERE user_id = $1",
        customer,
    )
    by_id = {
        row["id"]: Outcome(row["status"], float(row["accepted"]), float(row["terminal"]))
        for row in rows
    }
    missing = [i for i in order_ids if i not in by_id]
    if missing:
        raise GateFailed(f"{label}: {len(missing)} orders have no row in orders")
    return [by_id[order_id] for order_id in order_ids if order_id is not None]


# -- gates --------------------------------------------------------------------------------------


async def stock_mismatches(pool: asyncpg.Pool, products: Sequence[UUID]) -> list[str]:
    """Products where initial ≠ available + reserved + sold, something is still reserved,
    or sold ≠ the quantity of their confirmed order lines."""
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


async def gate_stock(pool: asyncpg.Pool, products: Sequence[UUID]) -> None:
    """Gate: the stock equation holds for every one of ``products``.

    The read model gets the last StockChanged after the order's terminal event, so the
    figures are given a while to arrive before the gate fails.
    """
    deadline = time.monotonic() + 120
    while True:
        broken = await stock_mismatches(pool, products)
        if not broken:
            return
        if time.monotonic() > deadline:
            raise GateFailed(
                f"stock equation broken for {len(broken)} of {len(products)} products "
                f"(initial {STOCK}); first ones: " + "; ".join(broken[:5])
            )
        await asyncio.sleep(0.5)


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


async def gate_no_dead_letters(bootstrap: str, when: str) -> None:
    letters = {topic: count for topic, count in (await dead_letters(bootstrap)).items() if count}
    if letters:
        raise GateFailed(f"dead letters {when}: {letters}")


TERMINAL_EVENT = {
    "confirmed": "OrderConfirmed",
    "rejected": "OrderRejected",
    "cancelled": "OrderCancelled",
}
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^@>]+)@", re.IGNORECASE | re.MULTILINE)


def emails_by_message_id(maildir: Path) -> Counter[str]:
    """How many emails the mail sink holds with each Message-ID (its local part)."""
    counts: Counter[str] = Counter()
    for folder in ("new", "cur"):
        for path in (maildir / folder).glob("*"):
            found = _MESSAGE_ID.search(path.read_bytes())
            if found:
                counts[found.group(1).decode()] += 1
    return counts


def gate_one_email_per_order(maildir: Path, label: str, ended: dict[UUID, str]) -> None:
    """Gate: each order of ``ended`` (id → terminal status) has exactly one email about it."""
    emails = emails_by_message_id(maildir)
    wrong = {
        order_id: emails[str(notification_id_for(order_id, TERMINAL_EVENT[status]))]
        for order_id, status in ended.items()
    }
    wrong = {order_id: count for order_id, count in wrong.items() if count != 1}
    if wrong:
        first = "; ".join(f"{order_id}: {count}" for order_id, count in list(wrong.items())[:5])
        raise GateFailed(
            f"{label}: {len(wrong):,} of {len(ended):,} terminal orders do not have exactly "
            f"one email (first ones: {first})"
        )


async def wait_one_email_per_order(maildir: Path, label: str, ended: dict[UUID, str]) -> None:
    """Gate: one email per order of ``ended``; the email follows the terminal event, so it is
    given a while to arrive."""
    deadline = time.monotonic() + 60
    while True:
        try:
            gate_one_email_per_order(maildir, label, ended)
            return
        except GateFailed:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def on_a_stack_of_its_own(
    name: str, console: Console, measure: Callable[[LocalStack], None]
) -> None:
    """Start a stack in a temporary home, ``measure`` on it, stop it and delete it.

    A broken gate exits with status 1, and the stack's logs, which explain it, are kept.
    """
    with tempfile.TemporaryDirectory(prefix=f"conveyor-{name}-") as home:
        stack = LocalStack(DevStackSettings.isolated(Path(home)), Console(stderr=True), {})
        try:
            stack.up()
            measure(stack)
        except GateFailed as failure:
            kept = Path(tempfile.mkdtemp(prefix=f"conveyor-{name}-logs-"))
            shutil.copytree(stack.settings.logs_dir, kept, dirs_exist_ok=True)
            console.print(f"[bold red]{name} failed a correctness gate:[/] {failure}")
            console.print(f"the stack's logs are kept in {kept}")
            sys.exit(1)
        finally:
            stack.down(purge=True)


Number = TypeVar("Number", int, float)


def rising_list(
    convert: Callable[[str], Number], what: str, example: str
) -> Callable[[str], list[Number]]:
    """An argparse type for the steps of a climb: a comma-separated list of ``what`` above 0,
    sorted rising."""

    def parse(text: str) -> list[Number]:
        values = [convert(part) for part in text.split(",") if part.strip()]
        if not values or any(value <= 0 for value in values):
            raise argparse.ArgumentTypeError(
                f"a comma-separated list of {what} above 0, e.g. {example}"
            )
        return sorted(values)

    parse.__name__ = what  # argparse names the type in "invalid <type> value: 'x'"
    return parse
