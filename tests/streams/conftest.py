from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from conveyor.infra.publisher import Publisher
from tests.conftest import RunningStack
from tests.streams.shop import Shop
from tests.streams.workers import Workers


@pytest.fixture(scope="session")
async def shop(stack: RunningStack, workers: Workers) -> AsyncIterator[Shop]:
    pool = await asyncpg.create_pool(stack.urls.database_url, min_size=1, max_size=4)
    try:
        async with Publisher(stack.urls.kafka_bootstrap_servers) as publisher:
            yield Shop(publisher, pool, Path(stack.maildir), stack.urls.kafka_bootstrap_servers)
    finally:
        await pool.close()


@pytest.fixture
async def cache(stack: RunningStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(stack.urls.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
