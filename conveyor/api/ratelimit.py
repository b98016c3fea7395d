"""Rate limits per caller, counted in Redis so every edge replica shares one budget.

A fixed one-minute window per (scope, caller): one INCR and EXPIRE round trip per request.
When Redis is unreachable requests are let through (and counted as such in the metrics):
an outage of the limiter must not become an outage of the shop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api import metrics
from conveyor.api.errors import TooManyRequests
from conveyor.infra.readmodel import PREFIX

WINDOW_SECONDS = 60
log = logging.getLogger("conveyor.api")


@dataclass(frozen=True)
class Budget:
    scope: str
    caller: str
    per_minute: int


async def spend(cache: aioredis.Redis, *budgets: Budget) -> None:
    """Count one request against each budget, in one round trip; TooManyRequests when any
    is exhausted."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    try:
        async with cache.pipeline(transaction=False) as pipe:
            for budget in budgets:
                key = f"{PREFIX}:ratelimit:{budget.scope}:{budget.caller}:{window}"
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS + 1)
            answers = await pipe.execute()
    except RedisError as exc:
        for budget in budgets:
            metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "unchecked").inc()
        log.warning("rate limiter unavailable, letting the request through: %r", exc)
        return
    for budget, count in zip(budgets, answers[::2], strict=True):
        if int(count) > budget.per_minute:
            metrics.RATE_LIMIT_DECISIONS.labels(budget.scope, "refused").inc()
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
            raise TooManyRequests(
                f"more than {budget.per_minute} requests a minute ({budget.scope}); "
                f"retry after {retry_after} s",
                retry_after,
            )
