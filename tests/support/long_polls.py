"""Orders that stay pending whatever runs, and the announcement that ends a long poll on one:
for the tests of waiting (``GET /orders/{id}?wait=``) that must choose when a wait ends."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import httpx
import redis.asyncio as aioredis

from conveyor.infra import readmodel
from tests.support.edge import Account
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async


async def pending_order(stack: RunningStack, owner: Account) -> uuid.UUID:
    """An order row as the edge writes it, pending, whose command went nowhere: no processor
    will ever move it on, so a long poll on it waits its full time."""
    order_id = uuid.uuid4()
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        await connection.execute(
            "INSERT INTO orders (id, user_id, idempotency_key, request_fingerprint, status, "
            "total, currency) VALUES ($1, $2, $3, 'fingerprint', 'pending', 10, 'EUR')",
            order_id,
            owner.id,
            uuid.uuid4().hex,
        )
        await connection.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, price, subtotal) "
            "VALUES ($1, $2, 1, $3, $3)",
            order_id,
            uuid.uuid4(),
            Decimal("10.00"),
        )
    finally:
        await connection.close()
    return order_id


async def answered_after_a_change(
    cache: aioredis.Redis, order_id: uuid.UUID, polls: list[asyncio.Task[httpx.Response]]
) -> list[httpx.Response]:
    """Announce a change of the order, as the projector does, until every poll has answered
    (again and again, since a poll may not have subscribed yet); their answers."""

    async def announce() -> bool:
        await cache.publish(readmodel.order_status_channel(order_id), "{}")
        return all(poll.done() for poll in polls)

    await eventually_async(announce, f"every poll on order {order_id} answers when it changes")
    return await asyncio.gather(*polls)
