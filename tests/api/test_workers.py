"""One edge, several uvicorn workers: its metrics add up whichever worker answers a scrape."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from conveyor.api.settings import usable_cpus
from tests.support.edge import API, EdgeProcess
from tests.support.stack import RunningStack
from tests.support.waiting import eventually, eventually_async

pytestmark = pytest.mark.e2e

# Requests for products that do not exist: a route no other client of this edge asks for.
ROUTE = f"{API}/products/{{product_id}}"
LABELS = {"route": ROUTE, "method": "GET", "status": "404"}
REQUESTS = "conveyor_http_requests_total"
# What an earlier run of the edge left in the metrics directory: never counted again.
EARLIER_RUN_REQUESTS = 1000


def leave_an_earlier_runs_counts(directory: Path) -> None:
    """Counts written as a worker of an edge that ran before in ``directory`` wrote them."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from prometheus_client import Counter; "
            f"Counter({REQUESTS!r}, 'earlier', {sorted(LABELS)!r})"
            f".labels(**{LABELS!r}).inc({EARLIER_RUN_REQUESTS})",
        ],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        check=True,
    )


@pytest.fixture(scope="module")
def metrics_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the edge is told to keep its workers' metrics in, as Kubernetes would."""
    directory = tmp_path_factory.mktemp("edge-metrics")
    leave_an_earlier_runs_counts(directory)
    return directory


@pytest.fixture(scope="module")
def two_workers(
    stack: RunningStack, metrics_directory: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    edge = EdgeProcess(
        stack.urls,
        tmp_path_factory.mktemp("two-workers") / "edge.log",
        settings={"PROMETHEUS_MULTIPROC_DIR": str(metrics_directory)},
        workers=2,
    )
    with edge.running():
        yield edge


def counted(text: str) -> float:
    """The requests to ``ROUTE`` a scrape reports."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS and sample.labels == LABELS
    )


def counted_by_each_worker(directory: Path, labels: dict[str, str]) -> dict[int, float]:
    """The requests with ``labels`` each worker has counted, read from its own file."""
    return {
        int(counters.stem.split("_")[1]): sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(counters)])  # type: ignore[no-untyped-call]
            for sample in metric.samples
            if sample.name == REQUESTS and sample.labels == labels
        )
        for counters in directory.glob("counter_*.db")
    }


def workers_of(edge: EdgeProcess) -> set[int]:
    """uvicorn's workers under the edge (multiprocessing starts a resource tracker there too)."""
    return {
        child.pid
        for child in psutil.Process(edge.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    }


def answered_by(directory: Path, labels: dict[str, str]) -> set[int]:
    return {pid for pid, n in counted_by_each_worker(directory, labels).items() if n}


async def test_metrics_add_up_across_workers_whichever_worker_answers(
    two_workers: EdgeProcess, metrics_directory: Path
) -> None:
    workers = workers_of(two_workers)
    assert len(workers) == 2
    # A connection of its own for every request, so the kernel hands each to either worker.
    one_shot = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=two_workers.base_url, limits=one_shot) as http:
        sent = 0

        async def several_workers_answer() -> set[int]:
            nonlocal sent
            answers = await asyncio.gather(
                *(http.get(f"{API}/products/{uuid.uuid4()}") for _ in range(20))
            )
            assert {answer.status_code for answer in answers} == {404}
            sent += len(answers)
            answering = answered_by(metrics_directory, LABELS)
            return answering if len(answering) > 1 else set()

        answering = await eventually_async(
            several_workers_answer, "both workers answer requests", within=60
        )
        assert answering == workers
        # A worker counts a request just after answering it.
        eventually(
            lambda: sum(counted_by_each_worker(metrics_directory, LABELS).values()) == sent,
            f"the workers have counted all {sent} requests",
            within=30,
        )

        scrapes: list[str] = []
        scraped = {"route": "/metrics", "method": "GET", "status": "200"}

        async def both_workers_scraped() -> set[int]:
            scrapes.append((await http.get("/metrics")).text)
            answering = answered_by(metrics_directory, scraped)
            return answering if len(answering) > 1 else set()

        await eventually_async(both_workers_scraped, "both workers answer scrapes", within=60)

    # Not one worker's share: every scrape, whoever answered it, and nothing of an earlier run.
    assert [counted(text) for text in scrapes] == [sent] * len(scrapes)
    for text in scrapes:
        [in_flight] = [
            family
            for family in text_string_to_metric_families(text)
            if family.name == "conveyor_http_requests_in_flight"
        ]
        # One figure for the edge (at least this scrape), not one per worker.
        [sample] = in_flight.samples
        assert "pid" not in sample.labels
        assert sample.value >= 1


def test_by_default_the_edge_runs_a_worker_per_cpu_and_removes_its_metrics_at_exit(
    stack: RunningStack, tmp_path: Path
) -> None:
    edge = EdgeProcess(stack.urls, tmp_path / "edge.log", workers=None)
    with edge.running():
        workers = [psutil.Process(pid) for pid in workers_of(edge)]
        # On one CPU uvicorn serves in the edge's own process.
        assert len(workers) == (usable_cpus() if usable_cpus() > 1 else 0)
        directories = {Path(worker.environ()["PROMETHEUS_MULTIPROC_DIR"]) for worker in workers}
        assert all(directory.is_dir() for directory in directories)
    assert not [directory for directory in directories if directory.exists()]
