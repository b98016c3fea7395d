"""The read model's stores as a processor that writes them holds them: a PostgreSQL pool and
a Redis client, connected on the first batch (a worker starts and restores its tables without
them) and closed when the worker stops."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


class ReadModelStores:
    def __init__(self, database_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self._connected: tuple[asyncpg.Pool, aioredis.Redis] | None = None

    async def connected(self) -> tuple[asyncpg.Pool, aioredis.Redis]:
        if self._connected is None:
            pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=2)
            self._connected = pool, aioredis.from_url(self.redis_url)
        return self._connected

    async def close(self) -> None:
        if self._connected is not None:
            pool, cache = self._connected
            await pool.close()
            await cache.aclose()
