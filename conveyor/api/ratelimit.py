"""Rate limits per caller, counted in Redis so every edge replica shares one budget.

A fixed one-minute window per (scope, caller). The requests that arrive while a count is on
its way to Redis share the next round trip (``conveyor.api.batching``): one pipeline of
INCRBY and EXPIRE per key for all of them.

When Redis is unreachable most requests are let through (and counted as such in the
metrics): an outage of the limiter must not become an outage of the shop. The budgets that
guard against password guessing fail closed instead: each worker counts them alone, against
the same budget, so logins go on at a bounded rate rather than all being refused or all let
through.
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
    # Counted by each worker alone while Redis is unreachable, rather than let through.
    fails_closed: bool = False


class _CountedHere:
    """One worker's own counts in the current window, for budgets that fail closed."""

    def __init__(self) -> None:
        self._window = -1
        self._counts: Counter[str] = Counter()

    def count(self, key: str, window: int) -> int:
        if window != self._window:  # the last window's counts are never read again
            self._window, self._counts = window, Counter()
        self._counts[key] += 1
        return self._counts[key]


@dataclass
class _Spending:
    """One request's budgets, and the counts Redis gives them once its batch is sent."""

    keys: list[str]
    counted: asyncio.Future[list[int]]


class RateLimiter:
    def __init__(self, cache: aioredis.Redis) -> None:
        self._cache = cache
        self._batches = Batches(self._send, "rate-limits")
        self._here = _CountedHere()

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
            counted = list(zip(budgets, await spending.counted, strict=True))
            decided_here = False
        except RedisError as exc:
            log.warning(
                "rate limiter unavailable (%r): counting the auth budgets on this worker "
                "alone, letting the rest through",
                exc,
            )
            counted, decided_here = self._count_here(budgets, spending.keys, window), True
        for budget, count in counted:
            if count > budget.per_minute:
                metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "refused").inc()
                retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
                raise TooManyRequests(
                    f"more than {budget.per_minute} requests a minute ({budget.scope}); "
                    f"retry after {retry_after} s",
                    retry_after,
                )
        if decided_here:
            for budget, _ in counted:
                metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "local").inc()

    def _count_here(
        self, budgets: tuple[Budget, ...], keys: list[str], window: int
    ) -> list[tuple[Budget, int]]:
        """The budgets that fail closed, counted by this worker; the others let through."""
        counted = []
        for budget, key in zip(budgets, keys, strict=True):
            if budget.fails_closed:
                counted.append((budget, self._here.count(key, window)))
            else:
                metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "unchecked").inc()
        return counted

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
