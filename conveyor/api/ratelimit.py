"""Rate limits per caller, counted in Redis so every edge replica shares one budget.

A fixed one-minute window per (scope, caller). The requests that arrive while a count is on
its way to Redis share the next round trip (``conveyor.api.batching``): one pipeline of
INCRBY and EXPIRE per key for all of them. When Redis is unreachable requests are
let through (and counted as such in the metrics): an outage of the limiter must not become
an outage of the shop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api import metrics
from conveyor.api.batching import Batches
from conveyor.api.errors import TooManyRequests
from conveyor.infra.readmodel import PREFIX

WINDOW_SECONDS = 60
log = logging.getLogger("conveyor.api")


@dataclass(frozen=True)
class Budget:
    scope: str
    caller: str
    per_minute: int


@dataclass
class _Spending:
    """One request's budgets, and the counts Redis gives them once its batch is sent."""

    keys: list[str]
    counted: asyncio.Future[list[int]]


class RateLimiter:
    def __init__(self, cache: aioredis.Redis) -> None:
        self._cache = cache
        self._batches = Batches(self._send, "rate-limits")

    async def spend(self, *budgets: Budget) -> None:
        """Count one request against each budget; TooManyRequests when any is exhausted."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        spending = _Spending(
            [f"{PREFIX}:ratelimit:{b.scope}:{b.caller}:{window}" for b in budgets],
            asyncio.get_running_loop().create_future(),
        )
        self._batches.add(spending)
        try:
            counts = await spending.counted
        except RedisError as exc:
            for budget in budgets:
                metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "unchecked").inc()
            log.warning("rate limiter unavailable, letting the request through: %r", exc)
            return
        for budget, count in zip(budgets, counts, strict=True):
            if count > budget.per_minute:
                metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "refused").inc()
                retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
                raise TooManyRequests(
                    f"more than {budget.per_minute} requests a minute ({budget.scope}); "
                    f"retry after {retry_after} s",
                    retry_after,
                )

    async def _send(self, batch: list[_Spending]) -> None:
        """One round trip for ``batch``: each key raised by how many requests spend on it;
        each request's count is what the key reached at its turn, as if sent one by one."""
        wanted = Counter(key for spending in batch for key in spending.keys)
        try:
            async with self._cache.pipeline(transaction=False) as pipe:
                for key, times in wanted.items():
                    pipe.incrby(key, times)
                    pipe.expire(key, WINDOW_SECONDS + 1)
                answers = await pipe.execute()
        except Exception as exc:  # each request decides what the failure means for it
            for spending in batch:
                if not spending.counted.done():
                    spending.counted.set_exception(exc)
            return
        reached = {
            key: int(total) - times
            for (key, times), total in zip(wanted.items(), answers[::2], strict=True)
        }
        for spending in batch:
            counts = []
            for key in spending.keys:
                reached[key] += 1
                counts.append(reached[key])
            if not spending.counted.done():  # its request may have gone meanwhile
                spending.counted.set_result(counts)
