"""An edge worker keeps no more PostgreSQL connections than CONVEYOR_DATABASE_POOL_SIZE,
however many requests arrive together: the setting that keeps a scaled-out edge within the
server's max_connections."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.support.edge import Api, EdgeProcess, edge_of_its_own
from tests.support.stack import RunningStack

pytestmark = pytest.mark.e2e

POOL_SIZE = 3
REQUESTS_AT_ONCE = 60


def database_connections(edge: EdgeProcess, database_url: str) -> int:
    """The edge's open connections to PostgreSQL, its workers' included."""
    port = urlsplit(database_url).port
    edge_process = psutil.Process(edge.pid)
    return sum(
        1
        for process in (edge_process, *edge_process.children(recursive=True))
        for connection in process.net_connections(kind="tcp")
        if connection.raddr
        and connection.raddr.port == port
        and connection.status == psutil.CONN_ESTABLISHED
    )


async def test_requests_arriving_together_share_the_workers_pool_of_connections(
    stack: RunningStack, tmp_path: Path
) -> None:
    settings = {"CONVEYOR_DATABASE_POOL_SIZE": str(POOL_SIZE)}
    with edge_of_its_own(stack.urls, tmp_path, settings) as edge:
        async with Api(edge) as api:
            account = await api.new_account()
            answers = await asyncio.gather(
                *(api.http.get("/orders", headers=account.auth) for _ in range(REQUESTS_AT_ONCE))
            )
            assert [answer.status_code for answer in answers] == [200] * REQUESTS_AT_ONCE
            # A pool keeps what it opened: the peak of the burst is still open.
            assert 1 <= database_connections(edge, stack.urls.database_url) <= POOL_SIZE
