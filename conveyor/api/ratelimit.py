"""Rate limits per caller, counted in Redis so every edge replica shares one budget.

A fixed one-minute window per (scope, caller): one INCR and EXPIRE round trip per request.
When Redis is unreachable requests are let through (and counted as such in the metrics):
an outage of the limiter must not become an outage of the shop.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conveyor.api import metrics
from conveyor.api.errors import TooManyRequests
from conveyor.infra.readmodel import PREFIX

WINDOW_SECONDS = 60
log = logging.getLogger("conveyor.api")


async def spend(cache: aioredis.Redis, scope: str, caller: str, per_minute: int) -> None:
    """Count one request of ``caller`` in ``scope``; TooManyRequests when over budget."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"{PREFIX}:ratelimit:{scope}:{caller}:{window}"
    try:
        async with cache.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 1)
            count, _ = await pipe.execute()
    except RedisError as exc:
        metrics.RATE_LIMIT_DECISIONS.labels(scope, "unchecked").inc()
        log.warning("rate limiter unavailable, letting the request through: %r", exc)
        return
    if int(count) > per_minute:
        metrics.RATE_LIMIT_DECISIONS.labels(scope, "refused").inc()
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
        raise TooManyRequests(
            f"more than {per_minute} requests a minute ({scope}); retry after {retry_after} s",
            retry_after,
        )
