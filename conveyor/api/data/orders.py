"""Orders as the edge writes them when it accepts one, and reads them back.

The projector moves ``orders.status`` along from ``orders.events``; Redis has the same
status a moment earlier (it is written just before the projector's transaction commits),
so reads take whichever of the two is further along.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api.batching import Batches
from conveyor.api.data.base import Pool, Row, database_errors, decode_cursor, page_of
from conveyor.api.errors import ServiceUnavailable, TooManyPendingOrders, Unprocessable
from conveyor.domain.messages import OrderStatus, RejectionReason
from conveyor.domain.rest import OrderItem, OrderPublic
from conveyor.infra import readmodel

log = logging.getLogger("conveyor.api")
_COLUMNS = "id, user_id, status, reason, total, currency, created_at, updated_at"


@dataclass(frozen=True)
class PricedLine:
    product_id: UUID
    quantity: int
    price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return self.price * self.quantity


def total_of(lines: list[PricedLine]) -> Decimal:
    return sum((line.subtotal for line in lines), start=Decimal("0.00"))


@dataclass(frozen=True)
class Placement:
    order: OrderPublic
    # False when the Idempotency-Key had already placed this order.
    created: bool


@dataclass(frozen=True)
class NewOrder:
    """An order as a request asks for it, priced; ``fingerprint`` identifies the request."""

    order_id: UUID
    user_id: UUID
    idempotency_key: str
    fingerprint: str
    lines: list[PricedLine]
    currency: str


async def place_order(
    pool: Pool,
    new: NewOrder,
    *,
    max_pending: int,
    retry_after: int,
    announce: Callable[[list[PricedLine]], Awaitable[object]],
    marks: AnnouncedMarks,
) -> Placement:
    """Record the order, ``announce`` it (PlaceOrder to Kafka), and only then answer.

    No database connection is held while Kafka acknowledges: a slow or unreachable broker
    must not take the connections the rest of the edge reads with. So:

    1. A short transaction records the order *unannounced* (``announced = false``), with
       its items. A new order of a user who already has ``max_pending`` pending orders is
       refused there (TooManyPendingOrders, 429 with ``retry_after``), under a lock per user
       held to that commit, so two requests at once cannot both take the last place.
    2. ``announce`` sends PlaceOrder, with no connection held.
    3. Acknowledged: the row is marked announced (``marks``, off the request's path). Not
       acknowledged: the row is withdrawn (deleted) and the error goes on (503), so nothing
       is left behind.

    A request with the same key that finds the order unannounced (the first request is
    still sending, or died before it could) announces it itself, with the lines as recorded:
    the same command with the same event id, which the saga takes once. The same key with a
    different body is refused. An edge that dies between 1 and 3 leaves an unannounced row;
    ``withdraw_unannounced`` deletes it once it is older than any send can take, and the
    projector marks announced any order whose PlaceOrder it sees, so an order that did reach
    Kafka is never withdrawn (and one withdrawn in a race is written again by the projector).
    ``order_id`` is derived from the user and the key, so a command that reached Kafka after
    its request timed out and the client's retry are the same order.
    """
    order_id, lines = new.order_id, new.lines
    recorded = await _record(pool, new, max_pending, retry_after)
    if recorded is not None:
        await _announce_or_withdraw(pool, order_id, lines, announce, marks)
        # Everything the answer holds was just written: no need to read it back.
        return Placement(
            OrderPublic(
                id=order_id,
                user_id=new.user_id,
                status=OrderStatus.PENDING,
                reason=None,
                items=[
                    OrderItem(
                        product_id=line.product_id,
                        quantity=line.quantity,
                        price=line.price,
                        subtotal=line.subtotal,
                    )
                    for line in lines
                ],
                total=total_of(lines),
                currency=new.currency,
                created_at=recorded,
                updated_at=recorded,
            ),
            created=True,
        )
    announced = await _adopt(pool, order_id, new.idempotency_key, new.fingerprint)
    order = await find_order(pool, order_id)
    assert order is not None
    if not announced:
        recorded_lines = [
            PricedLine(item.product_id, item.quantity, item.price) for item in order.items
        ]
        await _announce_or_withdraw(pool, order_id, recorded_lines, announce, marks)
    return Placement(order, created=False)


async def _record(pool: Pool, new: NewOrder, max_pending: int, retry_after: int) -> datetime | None:
    """The order's row and items, unannounced; its time, or None when the id had a row.

    A new order of a user with ``max_pending`` pending orders already is refused
    (TooManyPendingOrders). The edge writes an order's row, pending, before it answers 202,
    so the count includes orders accepted a moment ago that no processor has seen yet; it
    may briefly include one that has just ended, until the projector records its end.
    """
    async with database_errors(), pool.acquire() as connection, connection.transaction():
        # A lock per user until the transaction ends: a second request of the same user
        # waits here. The count is the next statement, so its snapshot, taken once the lock
        # is granted, sees the order the first request committed.
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('pending-orders:' || $1, 0))",
            str(new.user_id),
        )
        # Count, insert and items in one round trip: the order only when it is new and
        # within the cap, its items only with the row this statement made.
        recorded = await connection.fetchrow(
            """
            WITH counted AS (
                SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                       coalesce(bool_or(id = $1), false) AS placed
                FROM orders WHERE user_id = $2 AND (status = 'pending' OR id = $1)
            ),
            inserted AS (
                INSERT INTO orders (id, user_id, idempotency_key, request_fingerprint, status,
                                    total, currency, announced)
                SELECT $1, $2, $3, $4, 'pending', $5, $6, false FROM counted
                WHERE NOT counted.placed AND counted.pending < $7
                ON CONFLICT DO NOTHING
                RETURNING id, created_at
            ),
            items AS (
                INSERT INTO order_items (order_id, product_id, quantity, price, subtotal)
                SELECT inserted.id, line.product_id, line.quantity, line.price, line.subtotal
                FROM inserted,
                     unnest($8::uuid[], $9::integer[], $10::numeric[], $11::numeric[])
                         AS line (product_id, quantity, price, subtotal)
            )
            SELECT counted.pending, counted.placed, inserted.created_at
            FROM counted LEFT JOIN inserted ON true
            """,
            new.order_id,
            new.user_id,
            new.idempotency_key,
            new.fingerprint,
            total_of(new.lines),
            new.currency,
            max_pending,
            [line.product_id for line in new.lines],
            [line.quantity for line in new.lines],
            [line.price for line in new.lines],
            [line.subtotal for line in new.lines],
        )
    assert recorded is not None
    refused = recorded["created_at"] is None and not recorded["placed"]
    if refused and recorded["pending"] >= max_pending:
        raise TooManyPendingOrders(recorded["pending"], max_pending, retry_after)
    created_at: datetime | None = recorded["created_at"]
    return created_at


async def _adopt(pool: Pool, order_id: UUID, idempotency_key: str, fingerprint: str) -> bool:
    """The existing row is this request's order (else Unprocessable); whether it is announced.

    The projector writes a row without a fingerprint when it sees a PlaceOrder whose request
    had timed out here; the retry adopts it as its own.
    """
    async with database_errors():
        row = await pool.fetchrow(
            """
            UPDATE orders SET idempotency_key = $2, request_fingerprint = $3
            WHERE id = $1 AND request_fingerprint IS NULL
            RETURNING request_fingerprint, announced
            """,
            order_id,
            idempotency_key,
            fingerprint,
        ) or await pool.fetchrow(
            "SELECT request_fingerprint, announced FROM orders WHERE id = $1", order_id
        )
    if row is None:
        # Withdrawn a moment ago, its announcement having failed: the client's next retry
        # records the order anew.
        raise ServiceUnavailable(
            "this order could not be handed on just now; retry with the same key", 1
        )
    if row["request_fingerprint"] != fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was used for a different request; use a new key for a new order"
        )
    announced: bool = row["announced"]
    return announced


async def _announce_or_withdraw(
    pool: Pool,
    order_id: UUID,
    lines: list[PricedLine],
    announce: Callable[[list[PricedLine]], Awaitable[object]],
    marks: AnnouncedMarks,
) -> None:
    try:
        await announce(lines)
    except Exception:
        try:
            async with database_errors():
                await pool.execute(
                    "DELETE FROM orders WHERE id = $1 AND NOT announced AND status = 'pending'",
                    order_id,
                )
        except ServiceUnavailable:
            # withdraw_unannounced deletes it once the database is back.
            log.warning("order %s not announced and not withdrawn yet", order_id)
        raise
    marks.add(order_id)


class AnnouncedMarks:
    """Marks orders announced, many in one statement and off the requests' path: Kafka has
    the order, so the answer need not wait for its mark. An order whose mark is lost (the
    database away, the edge stopped) is marked by the projector when it sees the order."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._batches = Batches(self._mark, "mark-announced-orders")

    def add(self, order_id: UUID) -> None:
        self._batches.add(order_id)

    async def drain(self) -> None:
        await self._batches.drain()

    async def _mark(self, order_ids: list[UUID]) -> None:
        try:
            async with database_errors():
                await self._pool.execute(
                    "UPDATE orders SET announced = true "
                    "WHERE id = ANY($1::uuid[]) AND NOT announced",
                    order_ids,
                )
        except ServiceUnavailable:
            log.warning("%d announced orders not marked so yet", len(order_ids))


async def withdraw_unannounced(pool: Pool, older_than: timedelta) -> int:
    """Delete the orders an edge recorded and then died before announcing (see
    ``place_order``), once older than any announcement can take; returns how many."""
    async with database_errors():
        withdrawn = await pool.fetch(
            """
            DELETE FROM orders
            WHERE NOT announced AND status = 'pending' AND created_at < now() - $1::interval
            RETURNING id
            """,
            older_than,
        )
    return len(withdrawn)


async def _items(pool: Pool, order_ids: list[UUID]) -> dict[UUID, list[OrderItem]]:
    rows = await pool.fetch(
        "SELECT order_id, product_id, quantity, price, subtotal FROM order_items "
        "WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, product_id",
        order_ids,
    )
    items: dict[UUID, list[OrderItem]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        items[row["order_id"]].append(
            OrderItem(
                product_id=row["product_id"],
                quantity=row["quantity"],
                price=row["price"],
                subtotal=row["subtotal"],
            )
        )
    return items


def _order(row: Row, items: list[OrderItem], newer: Mapping[str, Any] | None) -> OrderPublic:
    status, reason, updated_at = OrderStatus(row["status"]), row["reason"], row["updated_at"]
    if (
        newer
        and OrderStatus(newer["status"]) != status
        and status.can_become(OrderStatus(newer["status"]))
    ):
        status = OrderStatus(newer["status"])
        reason = newer["reason"] or None
        updated_at = datetime.fromisoformat(newer["updated_at"])
    return OrderPublic(
        id=row["id"],
        user_id=row["user_id"],
        status=status,
        reason=RejectionReason(reason) if reason else None,
        items=items,
        total=row["total"],
        currency=row["currency"].strip(),
        created_at=row["created_at"],
        updated_at=updated_at,
    )


async def find_order(
    pool: Pool, order_id: UUID, cache: aioredis.Redis | None = None
) -> OrderPublic | None:
    async with database_errors():
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
        if row is None:
            return None
        items = await _items(pool, [order_id])
    newer = await cached_status(cache, order_id) if cache is not None else None
    return _order(row, items[order_id], newer)


async def cached_status(cache: aioredis.Redis, order_id: UUID) -> dict[str, str] | None:
    """The status the projector last wrote to Redis for this order, if any."""
    try:
        raw: dict[bytes, bytes] = await cache.hgetall(  # type: ignore[assignment]
            readmodel.order_status_key(order_id)
        )
    except RedisError:
        return None
    if not raw or b"status" not in raw:
        return None
    return {key.decode(): value.decode() for key, value in raw.items()}


async def list_orders(
    pool: Pool,
    *,
    user_id: UUID | None,
    status: OrderStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[OrderPublic], str | None]:
    after = decode_cursor(cursor) if cursor else None
    async with database_errors():
        rows = await pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM orders
            WHERE ($1::uuid IS NULL OR user_id = $1)
              AND ($2::text IS NULL OR status = $2)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
            ORDER BY created_at DESC, id DESC
            LIMIT $5
            """,
            user_id,
            status.value if status else None,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
        kept, next_cursor = page_of(rows, limit)
        items = await _items(pool, [row["id"] for row in kept])
    return [_order(row, items[row["id"]], None) for row in kept], next_cursor
