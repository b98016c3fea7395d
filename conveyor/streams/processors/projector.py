"""``projector``: orders.events and inventory.events into PostgreSQL and Redis.

Each batch of records is one PostgreSQL transaction and one Redis pipeline, and its writes
are set-based: the batch is first reduced, in Python, to one row per key, to what applying
its records one at a time would have done, and each kind of change is then one statement
over arrays (``unnest``), whatever the batch's size:

- new orders: their ``orders`` rows and ``order_items``;
- status changes: ``orders``, and the ``payments`` row each implies (authorized on
  OrderConfirmed, refunded on OrderCancelled);
- stock figures: ``stock``.

So a batch costs at most three statements besides BEGIN and COMMIT, each only when the batch
holds that kind of event, plus the invoices: each order the batch confirms gets its invoice
(``conveyor.infra.invoices.ensure_invoice``, a few statements per order, numbers being taken
one at a time off the year's counter), and a confirmed order it cancels a refund on it.
Every write is idempotent, so a redelivered or late record changes nothing:

- OrderPlaced inserts an order only when it has no row: the edge writes its own first.
- Orders only move forward (the saga's transitions, ``OrderStatus.can_become``). What an
  order's events in the batch lead to depends on the status its row has, which only the
  statement sees, so the batch plans a result for each status the order could be in, and
  the statement applies the plan of the status the locked row has.
- Stock figures only replace older versions: a product's newest figure in the batch is
  written if its version is above the row's.

Redis is written from what PostgreSQL actually changed, before the transaction commits (both
or neither): an order's status hash (kept for the retention, then the edge reads PostgreSQL
alone) and one announcement on its channel, of its final status; a product's stock hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.infra import invoices, readmodel
from conveyor.streams import metrics
from conveyor.streams.runtime import Processor
from conveyor.streams.stores import ReadModelStores

# A hash to write to Redis and, for order statuses, the channel to announce it on.
RedisWrite = tuple[str, dict[str, str], str | None]
# What pool.acquire() hands out; it behaves as a connection (generic only to the stubs).
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy

StatusEvent = m.OrderConfirmed | m.OrderRejected | m.OrderCancelled
T = TypeVar("T")

_STATUS_OF = {
    "OrderConfirmed": m.OrderStatus.CONFIRMED,
    "OrderRejected": m.OrderStatus.REJECTED,
    "OrderCancelled": m.OrderStatus.CANCELLED,
}
# The statuses an order can still leave: a plan is made for each.
_OPEN_STATUSES = tuple(status for status in m.OrderStatus if not status.is_terminal)


def register(processor: Processor) -> None:
    """The Faust glue: both event topics, a batch at a time, into the read model."""
    projection = Projection(
        processor.urls.database_url,
        processor.urls.redis_url,
        status_ttl=max(1, int(processor.settings.state_retention_seconds)),
    )
    processor.handle_batches(processor.spec.inputs, projection.write)

    @processor.app.on_before_shutdown.connect
    async def close_stores(*_: object, **__: object) -> None:
        await projection.stores.close()


class Projection:
    """The read model's stores, connected on the first batch, and ``write_batch`` into them."""

    def __init__(self, database_url: str, redis_url: str, *, status_ttl: int) -> None:
        self.stores = ReadModelStores(database_url, redis_url)
        self.status_ttl = status_ttl

    async def write(self, batch: Sequence[Envelope[m.Message]]) -> None:
        pool, cache = await self.stores.connected()
        await write_batch(pool, cache, batch, self.status_ttl)


async def write_batch(
    pool: asyncpg.Pool,
    cache: aioredis.Redis,
    batch: Sequence[Envelope[m.Message]],
    status_ttl: int,
) -> None:
    """Write ``batch`` into PostgreSQL and Redis: one transaction, one pipeline."""
    reduced = ReducedBatch.of(batch)
    async with pool.acquire() as connection, connection.transaction():
        # Rows are written in key order, so two projectors that briefly share a
        # partition (a rebalance) lock them in the same order rather than deadlock.
        created = await _insert_orders(connection, reduced.in_key_order(reduced.placed))
        redis_writes, moved = await _move_orders(connection, list(reduced.plans(created)))
        redis_writes += await _update_stock(connection, reduced.in_key_order(reduced.newest_stock))
        # Last: the year's invoice counter is the last lock this transaction takes, as it
        # is for every issuer (conveyor.infra.invoices), so none of them deadlock.
        await _issue_invoices(connection, moved)
        # Inside the transaction: when Redis fails, PostgreSQL rolls back too and the
        # retried batch writes both, instead of finding nothing left to change.
        if redis_writes:
            async with cache.pipeline(transaction=False) as pipe:
                for key, fields, channel in redis_writes:
                    pipe.hset(key, mapping=cast(Any, fields))
                    if channel is not None:
                        # An order's status hash is a cache of its row: it is kept for
                        # the retention window, then the edge reads PostgreSQL alone.
                        pipe.expire(key, status_ttl)
                        pipe.publish(channel, json.dumps(fields))
                await pipe.execute()


# -- the batch, reduced to one entry per key -----------------------------------------------


@dataclass(frozen=True)
class Step:
    """One status change an event makes of an order."""

    status: m.OrderStatus
    reason: str | None
    at: datetime
    payment_id: str | None

    @classmethod
    def of(cls, event: StatusEvent, at: datetime) -> Step:
        return cls(
            status=_STATUS_OF[event.type],
            reason=event.reason.value if isinstance(event, m.OrderRejected) else None,
            at=at,
            payment_id=event.payment_id if isinstance(event, m.OrderConfirmed) else None,
        )


@dataclass(frozen=True)
class Plan:
    """What the batch's status events make of an order whose row has status ``start``."""

    order_id: UUID
    start: m.OrderStatus
    # The changes that apply, in order; the last is the status the order ends with.
    steps: tuple[Step, ...]

    @property
    def final(self) -> Step:
        return self.steps[-1]

    @property
    def payment_id(self) -> str | None:
        """The payment to record, when this plan confirms the order."""
        return next((step.payment_id for step in self.steps if step.payment_id), None)

    @property
    def refunded_at(self) -> datetime | None:
        """When the order's payment is refunded, if this plan cancels the order."""
        cancelled = m.OrderStatus.CANCELLED
        return next((step.at for step in self.steps if step.status is cancelled), None)

    @classmethod
    def of(cls, order_id: UUID, start: m.OrderStatus, changes: Iterable[Step]) -> Plan | None:
        """``changes`` made one by one from ``start``: those that are a step forward."""
        status, steps = start, []
        for step in changes:
            if status.can_become(step.status):
                steps.append(step)
                status = step.status
        return cls(order_id, start, tuple(steps)) if steps else None


@dataclass
class ReducedBatch:
    """A batch's records grouped by key, in the order they came (a key's records share a
    partition, so the batch holds them in the order they were published)."""

    # Each order's first OrderPlaced (a later one would find its row): event and time.
    placed: dict[UUID, tuple[m.OrderPlaced, datetime]] = field(default_factory=dict)
    # Each order's status events, and how many of them came before its first OrderPlaced.
    steps: dict[UUID, list[Step]] = field(default_factory=dict)
    steps_before_placed: dict[UUID, int] = field(default_factory=dict)
    # Each product's newest figure (a lower or equal version would change nothing after it).
    newest_stock: dict[UUID, Envelope[m.StockChanged]] = field(default_factory=dict)

    @classmethod
    def of(cls, batch: Sequence[Envelope[m.Message]]) -> ReducedBatch:
        reduced = cls()
        for envelope in batch:
            match envelope.payload:
                case m.OrderPlaced() as placed if placed.order_id not in reduced.placed:
                    reduced.placed[placed.order_id] = (placed, envelope.occurred_at)
                    reduced.steps_before_placed[placed.order_id] = len(
                        reduced.steps.get(placed.order_id, ())
                    )
                case m.OrderConfirmed() | m.OrderRejected() | m.OrderCancelled() as event:
                    step = Step.of(event, envelope.occurred_at)
                    reduced.steps.setdefault(event.order_id, []).append(step)
                case m.StockChanged() as changed:
                    newest = reduced.newest_stock.get(changed.product_id)
                    if newest is None or newest.payload.version < changed.version:
                        reduced.newest_stock[changed.product_id] = cast(
                            Envelope[m.StockChanged], envelope
                        )
        return reduced

    @staticmethod
    def in_key_order(by_key: dict[UUID, T]) -> list[T]:
        return [by_key[key] for key in sorted(by_key)]

    def plans(self, created: set[UUID]) -> Iterator[Plan]:
        """A plan per order and status it could have; ``created``: rows this batch made."""
        for order_id, steps in self.steps.items():
            if order_id in created:
                # Applied one by one, the events before the OrderPlaced that made the row
                # found no row to move.
                steps = steps[self.steps_before_placed[order_id] :]
            for start in _OPEN_STATUSES:
                plan = Plan.of(order_id, start, steps)
                if plan is not None:
                    yield plan


# -- the statements ------------------------------------------------------------------------


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, the arrays a statement ``unnest``s back into rows."""
    return [list(column) for column in zip(*rows, strict=True)]


async def _insert_orders(
    connection: Connection, placed: Sequence[tuple[m.OrderPlaced, datetime]]
) -> set[UUID]:
    """Rows for the orders that have none, with their items; returns the orders created."""
    orders = [
        (order.order_id, order.user_id, order.total, order.currency, at) for order, at in placed
    ]
    if not orders:
        return set()
    lines = [
        (order.order_id, line.product_id, line.quantity, line.unit_price, line.subtotal)
        for order, _ in placed
        for line in order.items
    ]
    # The edge writes its own row (with the client's Idempotency-Key) and items before
    # publishing; an order placed another way gets its id as its key. Items are written
    # only with a row this statement made: a row that exists has its items. A row the edge
    # had not yet marked announced is marked: its PlaceOrder is in Kafka, so the edge must
    # never withdraw it.
    rows = await connection.fetch(
        """
        WITH placed AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::text[],
                                 $5::timestamptz[])
                AS placed (id, user_id, total, currency, placed_at)
        ),
        created AS (
            INSERT INTO orders (id, user_id, idempotency_key, status, total, currency,
                                created_at, updated_at)
            SELECT id, user_id, 'order:' || id, 'pending', total, currency, placed_at,
                   placed_at
            FROM placed
            ON CONFLICT DO NOTHING
            RETURNING id
        ),
        announced AS (
            UPDATE orders SET announced = true
            FROM placed WHERE orders.id = placed.id AND NOT orders.announced
        ),
        items AS (
            INSERT INTO order_items (order_id, product_id, quantity, price, subtotal)
            SELECT line.order_id, line.product_id, line.quantity, line.price, line.subtotal
            FROM unnest($6::uuid[], $7::uuid[], $8::integer[], $9::numeric[],
                        $10::numeric[])
                AS line (order_id, product_id, quantity, price, subtotal)
            JOIN created ON created.id = line.order_id
        )
        SELECT id FROM created
        """,
        *_columns(orders),
        *_columns(lines),
    )
    return {row["id"] for row in rows}


async def _move_orders(
    connection: Connection, plans: Sequence[Plan]
) -> tuple[list[RedisWrite], list[Plan]]:
    """Apply to each order the plan for its status, with its payment; returns what to tell,
    and the plans applied."""
    if not plans:
        return [], []
    rows = await connection.fetch(
        """
        WITH plan AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],
                                 $5::timestamptz[], $6::text[], $7::timestamptz[])
                AS plan (order_id, start, status, reason, moved_at, payment_id, refunded_at)
        ),
        -- Locked, and read as they are once locked: a change to an order committed since
        -- this statement began (another projector still finishing a batch of a partition
        -- it lost) is waited for and seen, so the plan applied is that of its status now.
        current AS MATERIALIZED (
            SELECT id, status FROM orders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
        ),
        moved AS (
            UPDATE orders
            SET status = plan.status, reason = plan.reason, updated_at = plan.moved_at
            FROM current
            JOIN plan ON plan.order_id = current.id AND plan.start = current.status
            WHERE orders.id = current.id
            RETURNING orders.id, plan.start, orders.created_at, orders.total,
                      orders.currency, plan.payment_id, plan.refunded_at
        ),
        -- An order confirmed by its plan gets its payment row, already refunded when the
        -- plan cancels it too (the insert is not visible to a sibling update).
        authorized AS (
            INSERT INTO payments (order_id, payment_id, status, amount, currency, updated_at)
            SELECT id, payment_id,
                   CASE WHEN refunded_at IS NULL THEN 'authorized' ELSE 'refunded' END,
                   total, currency, coalesce(refunded_at, now())
            FROM moved
            WHERE payment_id IS NOT NULL
            ON CONFLICT DO NOTHING
        ),
        refunded AS (
            UPDATE payments SET status = 'refunded', updated_at = moved.refunded_at
            FROM moved
            WHERE payments.order_id = moved.id
              AND moved.payment_id IS NULL AND moved.refunded_at IS NOT NULL
        )
        SELECT id, start, created_at FROM moved
        """,
        *_columns(
            [
                (
                    plan.order_id,
                    plan.start.value,
                    plan.final.status.value,
                    plan.final.reason,
                    plan.final.at,
                    plan.payment_id,
                    plan.refunded_at,
                )
                for plan in plans
            ]
        ),
    )
    plan_of = {(plan.order_id, plan.start.value): plan for plan in plans}
    writes: list[RedisWrite] = []
    applied: list[Plan] = []
    for row in rows:
        plan = plan_of[(row["id"], row["start"])]
        applied.append(plan)
        # Each change the order made, as if its events had come in batches of one.
        for step in plan.steps:
            elapsed = (step.at - row["created_at"]).total_seconds()
            metrics.ORDER_END_TO_END_SECONDS.labels(step.status.value).observe(max(elapsed, 0.0))
        # Only the final status is announced, once, even when the order moved twice: the
        # channel tells the edge's long polls (and any subscriber) that the order's read
        # model changed, and a listener then reads the hash or the row, which hold the final
        # status; an intermediate one was never committed, so announcing it would send a
        # status no reader can find. Every announcement equals what the hash then holds, and
        # the last one a subscriber sees is the final status. orders.events is the history.
        fields = {
            "order_id": str(plan.order_id),
            "status": plan.final.status.value,
            "reason": plan.final.reason or "",
            "updated_at": plan.final.at.isoformat(),
        }
        writes.append(
            (
                readmodel.order_status_key(plan.order_id),
                fields,
                readmodel.order_status_channel(plan.order_id),
            )
        )
    return writes, applied


async def _issue_invoices(connection: Connection, applied: Sequence[Plan]) -> None:
    """An invoice for each order this batch confirmed, and a refund on the invoice of each
    confirmed order it cancelled; in key order, in the batch's transaction (the orders' rows
    are locked already).

    One ``ensure_invoice`` per order rather than one statement for the batch: the numbers
    must come one at a time off the year's counter anyway, and an order that already has
    its invoice (issued by the notifications processor or the edge) costs a lookup.
    """
    for plan in sorted(applied, key=lambda plan: plan.order_id):
        confirmed_before = plan.start is m.OrderStatus.CONFIRMED
        if plan.payment_id is None and not confirmed_before:
            continue  # rejected, or cancelled before it was confirmed: no invoice
        # Issued with the refund already when the row is cancelled by now; or else marked.
        await invoices.ensure_invoice(connection, plan.order_id, known_confirmed=True)
        if plan.refunded_at is not None:
            await invoices.record_refund(connection, plan.order_id, plan.refunded_at)


async def _update_stock(
    connection: Connection, newest: Sequence[Envelope[m.StockChanged]]
) -> list[RedisWrite]:
    """Write each product's newest figure over an older version; returns what changed."""
    if not newest:
        return []
    rows = await connection.fetch(
        """
        INSERT INTO stock (product_id, available, reserved, sold, version, last_event_id,
                           updated_at)
        SELECT * FROM unnest($1::uuid[], $2::integer[], $3::integer[], $4::integer[],
                             $5::bigint[], $6::uuid[], $7::timestamptz[])
        ON CONFLICT (product_id) DO UPDATE SET
            available = EXCLUDED.available, reserved = EXCLUDED.reserved, sold = EXCLUDED.sold,
            version = EXCLUDED.version, last_event_id = EXCLUDED.last_event_id,
            updated_at = EXCLUDED.updated_at
        WHERE stock.version < EXCLUDED.version
        RETURNING product_id
        """,
        *_columns(
            [
                (
                    change.payload.product_id,
                    change.payload.available,
                    change.payload.reserved,
                    change.payload.sold,
                    change.payload.version,
                    change.event_id,
                    change.occurred_at,
                )
                for change in newest
            ]
        ),
    )
    written = {row["product_id"] for row in rows}
    return [
        (
            readmodel.stock_key(change.payload.product_id),
            {
                "available": str(change.payload.available),
                "reserved": str(change.payload.reserved),
                "sold": str(change.payload.sold),
                "version": str(change.payload.version),
            },
            None,
        )
        for change in newest
        if change.payload.product_id in written
    ]
