"""Waiting for an order to leave ``pending`` without polling: Redis pub/sub.

The projector publishes every status change on the order's channel. Each edge process
holds one pattern subscription for all orders and wakes the requests waiting on the order
a message names, so a thousand waiting clients cost one Redis connection, not a thousand.
What a waiting client still holds of its worker, a connection and a subscriber, is capped
per user (``WaitsPerUser``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api import metrics
from conveyor.api.errors import TooManyRequests
from conveyor.infra import readmodel

log = logging.getLogger("conveyor.api")
_PATTERN = readmodel.order_status_channel("*")
_RECONNECT_SECONDS = 1.0


class OrderStatusWatcher:
    def __init__(self, cache: aioredis.Redis) -> None:
        self._cache = cache
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._listening = asyncio.create_task(self._listen(), name="order-status-watcher")
        # Start-up waits for the subscription, so no change published afterwards is missed;
        # if Redis is down, requests still work (they wait their full time and re-read).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening

    @contextlib.asynccontextmanager
    async def watching(self, order_id: UUID) -> AsyncIterator[asyncio.Event]:
        """An event set when the order's status changes; enter it *before* reading the status."""
        channel = readmodel.order_status_channel(order_id)
        changed = asyncio.Event()
        self._waiters[channel].add(changed)
        try:
            yield changed
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[channel]

    async def _listen(self) -> None:
        while True:
            pubsub = self._cache.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(_PATTERN)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    for changed in self._waiters.get(name, ()):
                        changed.set()
            except RedisError as exc:
                self._subscribed.clear()
                # Wake everyone: a change may have been missed while the connection was down.
                for waiters in self._waiters.values():
                    for changed in waiters:
                        changed.set()
                log.warning("order status subscription lost (%r); reconnecting", exc)
                await asyncio.sleep(_RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


class WaitsPerUser:
    """The long polls each user has waiting on this worker process, at most ``cap`` at once.

    Per process, like what a wait holds: one client cannot take a worker's connections and
    memory by following thousands of orders at once. A count per process needs no round
    trip and is never left behind by a worker that died.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        # When each of a user's waits ends at the latest (monotonic clock).
        self._deadlines: dict[UUID, list[float]] = {}

    @contextlib.contextmanager
    def admitted(self, user_id: UUID, seconds: float) -> Iterator[None]:
        """Hold one of the user's places while waiting up to ``seconds``; TooManyRequests
        when all are taken, with Retry-After when the first of them frees at the latest."""
        now = time.monotonic()
        deadlines = self._deadlines.setdefault(user_id, [])
        if len(deadlines) >= self.cap:
            metrics.RATE_LIMIT_DECISIONS.labels("waits", "refused").inc()
            retry_after = max(1, math.ceil(min(deadlines) - now))
            raise TooManyRequests(
                f"you already have {len(deadlines)} requests waiting on orders, the most one "
                f"account may have at once; retry after {retry_after} s, or ask without wait",
                retry_after,
            )
        deadline = now + seconds
        deadlines.append(deadline)
        try:
            yield
        finally:
            deadlines.remove(deadline)
            if not deadlines:
                del self._deadlines[user_id]
