"""``projector``: orders.events and inventory.events into PostgreSQL and Redis.

Each batch of records is one PostgreSQL transaction and one Redis pipeline. Every write is
idempotent: orders only move forward (the same transitions as the saga), stock figures only
replace older versions, and Redis is written from what PostgreSQL actually changed (before
the transaction commits, so both or neither), so a redelivered or late record changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import redis.asyncio as aioredis

from conveyor.domain import messages as m
from conveyor.domain.envelope import Envelope
from conveyor.domain.topics import PROCESSOR_INPUTS
from conveyor.infra import readmodel
from conveyor.streams import metrics
from conveyor.streams.runtime import Processor

# A hash to write to Redis and, for order statuses, the channel to announce it on.
RedisWrite = tuple[str, dict[str, str], str | None]
# What pool.acquire() hands out; it behaves as a connection (generic only to the stubs).
if TYPE_CHECKING:
    Connection = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy

_STATUS_OF = {
    "OrderConfirmed": m.OrderStatus.CONFIRMED,
    "OrderRejected": m.OrderStatus.REJECTED,
    "OrderCancelled": m.OrderStatus.CANCELLED,
}


def register(processor: Processor) -> None:
    connections: dict[str, Any] = {}
    status_ttl = max(1, int(processor.settings.state_retention_seconds))

    async def stores() -> tuple[asyncpg.Pool, aioredis.Redis]:
        if not connections:
            connections["pg"] = await asyncpg.create_pool(
                processor.urls.database_url, min_size=1, max_size=2
            )
            connections["redis"] = aioredis.from_url(processor.urls.redis_url)
        return connections["pg"], connections["redis"]

    async def on_batch(batch: Sequence[Envelope[m.Message]]) -> None:
        pool, cache = await stores()
        redis_writes: list[RedisWrite] = []
        async with pool.acquire() as connection, connection.transaction():
            for envelope in batch:
                write = await _project(connection, envelope)
                if write is not None:
                    redis_writes.append(write)
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

    processor.handle_batches(PROCESSOR_INPUTS["projector"], on_batch)

    @processor.app.on_before_shutdown.connect
    async def close_stores(*_: object, **__: object) -> None:
        if connections:
            await connections["pg"].close()
            await connections["redis"].aclose()


async def _project(connection: Connection, envelope: Envelope[m.Message]) -> RedisWrite | None:
    """Apply one event; returns the Redis hash to write (and channel to tell) if it changed."""
    match envelope.payload:
        case m.OrderPlaced() as placed:
            await _insert_order(connection, placed, envelope)
            return None
        case m.OrderConfirmed() | m.OrderRejected() | m.OrderCancelled() as terminal:
            return await _move_order(connection, terminal, envelope)
        case m.StockChanged() as changed:
            return await _update_stock(connection, changed, envelope)
    return None


async def _insert_order(
    connection: Connection, placed: m.OrderPlaced, envelope: Envelope[m.Message]
) -> None:
    # The edge writes its own row (with the client's Idempotency-Key) before publishing; an
    # order placed another way gets its id as its key.
    await connection.execute(
        """
        INSERT INTO orders (id, user_id, idempotency_key, status, total, currency, created_at,
                            updated_at)
        VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)
        ON CONFLICT DO NOTHING
        """,
        placed.order_id,
        placed.user_id,
        f"order:{placed.order_id}",
        placed.total,
        placed.currency,
        envelope.occurred_at,
    )
    await connection.executemany(
        """
        INSERT INTO order_items (order_id, product_id, quantity, price, subtotal)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT DO NOTHING
        """,
        [
            (placed.order_id, line.product_id, line.quantity, line.unit_price, line.subtotal)
            for line in placed.items
        ],
    )


async def _move_order(
    connection: Connection,
    event: m.OrderConfirmed | m.OrderRejected | m.OrderCancelled,
    envelope: Envelope[m.Message],
) -> RedisWrite | None:
    status = _STATUS_OF[event.type]
    reason = event.reason.value if isinstance(event, m.OrderRejected) else None
    moved = await connection.fetchrow(
        """
        UPDATE orders SET status = $2, reason = $3, updated_at = $4
        WHERE id = $1
          AND (status = 'pending' OR (status = 'confirmed' AND $2 = 'cancelled'))
        RETURNING created_at
        """,
        event.order_id,
        status.value,
        reason,
        envelope.occurred_at,
    )
    if moved is None:
        return None
    if isinstance(event, m.OrderConfirmed):
        await connection.execute(
            """
            INSERT INTO payments (order_id, payment_id, status, amount, currency)
            SELECT id, $2, 'authorized', total, currency FROM orders WHERE id = $1
            ON CONFLICT DO NOTHING
            """,
            event.order_id,
            event.payment_id,
        )
    elif isinstance(event, m.OrderCancelled):
        await connection.execute(
            "UPDATE payments SET status = 'refunded', updated_at = $2 WHERE order_id = $1",
            event.order_id,
            envelope.occurred_at,
        )
    elapsed = (envelope.occurred_at - moved["created_at"]).total_seconds()
    metrics.ORDER_END_TO_END_SECONDS.labels(status.value).observe(max(elapsed, 0.0))
    fields = {
        "order_id": str(event.order_id),
        "status": status.value,
        "reason": reason or "",
        "updated_at": envelope.occurred_at.isoformat(),
    }
    return (
        readmodel.order_status_key(event.order_id),
        fields,
        readmodel.order_status_channel(event.order_id),
    )


async def _update_stock(
    connection: Connection, changed: m.StockChanged, envelope: Envelope[m.Message]
) -> RedisWrite | None:
    applied = await connection.fetchval(
        """
        INSERT INTO stock (product_id, available, reserved, sold, version, last_event_id,
                           updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (product_id) DO UPDATE SET
            available = EXCLUDED.available, reserved = EXCLUDED.reserved, sold = EXCLUDED.sold,
            version = EXCLUDED.version, last_event_id = EXCLUDED.last_event_id,
            updated_at = EXCLUDED.updated_at
        WHERE stock.version < EXCLUDED.version
        RETURNING version
        """,
        changed.product_id,
        changed.available,
        changed.reserved,
        changed.sold,
        changed.version,
        envelope.event_id,
        envelope.occurred_at,
    )
    if applied is None:
        return None
    fields = {
        "available": str(changed.available),
        "reserved": str(changed.reserved),
        "sold": str(changed.sold),
        "version": str(changed.version),
    }
    return readmodel.stock_key(changed.product_id), fields, None
