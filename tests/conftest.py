"""The real local stack for the tests: started once per session, or reused when asked.

By default the session starts its own stack (Kafka, PostgreSQL, Redis, SMTP sink, payment
sandbox) in a temporary directory on free loopback ports, and stops it at the end. With
``CONVEYOR_TEST_STACK=reuse`` it uses the stack `make run` started (``CONVEYOR_DEV_HOME``),
and leaves it running.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from rich.console import Console

from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.infra.settings import ServiceUrls
from tests.api.edge import EdgeProcess
from tests.cluster import ROOT, Cluster, start_cluster
from tests.streams.workers import Workers


@dataclass(frozen=True)
class RunningStack:
    urls: ServiceUrls
    maildir: Path
    local: LocalStack

    @property
    def postgres_server_dsn(self) -> str:
        """The server's maintenance database, for creating and dropping test databases."""
        base, _, _ = self.urls.database_url.rpartition("/")
        return f"{base}/postgres"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the stack is marked so, whichever way it reached the fixture.
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real API server, controller-manager, scheduler and kwok node, for the session."""
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def crds_installed(cluster: Cluster) -> Cluster:
    """The cluster with Conveyor's CRDs applied and served (they stay for the session)."""
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/streamprocessors.conveyor.dev",
        "crd/topics.conveyor.dev",
        "--timeout=60s",
    )
    return cluster


@pytest.fixture(scope="session")
def edge(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """One ``conveyor api`` process on the session's stack (its first admin made once)."""
    process = EdgeProcess(stack.urls, tmp_path_factory.mktemp("edge") / "edge.log")
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def workers(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """All five processors, running for the whole session (tests use their own ids)."""
    running = Workers(stack.urls, tmp_path_factory.mktemp("workers"))
    try:
        running.start()
        yield running
    finally:
        running.stop_all()


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
