"""The fixtures every test folder may use; the root conftest loads them as a plugin.

The stack and the control plane are started once per session and only when a test asks for
them. By default the session starts its own stack (Kafka, PostgreSQL, Redis, SMTP sink,
payment sandbox) in a temporary directory on free loopback ports, and stops it at the end.
With ``CONVEYOR_TEST_STACK=reuse`` it uses the stack `make run` started
(``CONVEYOR_DEV_HOME``), and leaves it running.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from rich.console import Console

from conveyor.devstack.control_plane import REPOSITORY, ControlPlane, start_control_plane
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.infra.publisher import Publisher
from tests.support.edge import Account, Api, EdgeProcess
from tests.support.operator import Namespace, OperatorProcess
from tests.support.shop import Shop
from tests.support.stack import RunningStack
from tests.support.workers import Workers

# -- the services ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    console = Console(stderr=True)
    if os.environ.get("CONVEYOR_TEST_STACK") == "reuse":
        local = LocalStack(DevStackSettings(), console)
        unhealthy = [s.name for s in local.status() if not s.healthy]
        if unhealthy:
            pytest.exit(
                f"CONVEYOR_TEST_STACK=reuse, but {', '.join(unhealthy)} is not healthy: "
                "run `make run` first",
                returncode=3,
            )
        yield RunningStack(local.service_urls(), local.maildir, local)
        return
    # The tests' own stack ignores URL variables of the shell, so it never touches a real one.
    local = LocalStack(
        DevStackSettings.isolated(
            tmp_path_factory.mktemp("stack"), payment_timeout_delay_seconds=5
        ),
        console,
        {},
    )
    try:
        urls = local.up()
        yield RunningStack(urls, local.maildir, local)
    finally:
        local.down(purge=True)


@pytest.fixture
def fresh_database_url(stack: RunningStack) -> Iterator[str]:
    """An empty database of its own on the stack's PostgreSQL server, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(stack.postgres_server_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = stack.urls.database_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def cache(stack: RunningStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(stack.urls.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


# -- Conveyor's own processes ----------------------------------------------------------------


@pytest.fixture(scope="session")
def edge(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """One ``conveyor api`` process on the session's stack (its first admin made once)."""
    process = EdgeProcess(stack.urls, tmp_path_factory.mktemp("edge") / "edge.log")
    with process.running():
        yield process


@pytest.fixture(scope="session")
def workers(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Every processor, running for the whole session (tests use their own ids)."""
    running = Workers(stack.urls, tmp_path_factory.mktemp("workers"))
    try:
        running.start()
        yield running
    finally:
        running.stop_all()


# -- clients of them -------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def api(edge: EdgeProcess, stack: RunningStack) -> AsyncIterator[Api]:
    client = Api(edge, stack.maildir)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def account(api: Api) -> Account:
    return await api.new_account()


@pytest.fixture
async def admin(api: Api) -> Account:
    return await api.admin()


@pytest.fixture(scope="session")
async def shop(stack: RunningStack, workers: Workers) -> AsyncIterator[Shop]:
    pool = await asyncpg.create_pool(stack.urls.database_url, min_size=1, max_size=4)
    redis_client = aioredis.from_url(stack.urls.redis_url, decode_responses=True)
    try:
        async with Publisher(stack.urls.kafka_bootstrap_servers) as publisher:
            yield Shop(
                publisher,
                pool,
                redis_client,
                Path(stack.maildir),
                stack.urls.kafka_bootstrap_servers,
            )
    finally:
        await redis_client.aclose()
        await pool.close()


# -- the control plane -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real API server, controller-manager, scheduler and kwok node, for the session."""
    started = start_control_plane(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def crds_installed(cluster: ControlPlane) -> ControlPlane:
    """The cluster with Conveyor's CRDs applied and served (they stay for the session)."""
    cluster.kubectl("apply", "--server-side", "-k", str(REPOSITORY / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/streamprocessors.conveyor.dev",
        "crd/topics.conveyor.dev",
        "--timeout=60s",
    )
    return cluster


@pytest.fixture(scope="session")
def operator(
    crds_installed: ControlPlane, stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """``conveyor operator`` against the control plane with the CRDs, the stack's Kafka.

    The control plane's default StorageClass provisions volumes, so StatefulSet pods get
    their claims bound and run on the kwok node.
    """
    running = OperatorProcess(
        crds_installed,
        stack.urls.kafka_bootstrap_servers,
        tmp_path_factory.mktemp("operator") / "operator.log",
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def namespace(crds_installed: ControlPlane) -> Iterator[Namespace]:
    """A namespace of the test's own, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    crds_installed.kubectl("create", "namespace", name)
    yield Namespace(name, crds_installed)
    crds_installed.kubectl("delete", "namespace", name, "--wait=false")
