from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from conveyor.infra.publisher import Publisher
from tests.conftest import RunningStack
from tests.streams.shop import Shop
from tests.streams.workers import Workers


@pytest.fixture(scope="session")
def workers(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """All five processors, running for the whole session (tests use their own ids)."""
    running = Workers(stack.urls, tmp_path_factory.mktemp("workers"))
    try:
        running.start()
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
async def shop(stack: RunningStack, workers: Workers) -> AsyncIterator[Shop]:
    pool = await asyncpg.create_pool(stack.urls.database_url, min_size=1, max_size=4)
    try:
        async with Publisher(stack.urls.kafka_bootstrap_servers) as publisher:
            yield Shop(publisher, pool, Path(stack.maildir), stack.urls.kafka_bootstrap_servers)
    finally:
        await pool.close()
