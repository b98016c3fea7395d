"""`conveyor dev up | status | down` as a user runs them, on a stack of this module's own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from conveyor.devstack.components import COMPONENTS, Components
from conveyor.devstack.errors import DevStackError, ServiceDidNotStart
from conveyor.devstack.launched import answers_ok
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.domain.processors import CATALOGUE
from conveyor.infra.topic_admin import declared_topics
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def conveyor(settings: DevStackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `conveyor` command line as a user would, against this module's stack."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CONVEYOR_DEV_")
        and name not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
    }
    # Every port of the isolated settings, so no process of this stack lands on a default one.
    ports = {
        f"CONVEYOR_DEV_{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if name.endswith("_port")
    }
    environment.update({"CONVEYOR_DEV_HOME": str(settings.home), "COLUMNS": "200", **ports})
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStackSettings]:
    settings = DevStackSettings.isolated(tmp_path_factory.mktemp("lifecycle"))
    yield settings
    conveyor(settings, "dev", "down", "--purge")


def stack_pids(settings: DevStackSettings) -> dict[str, int]:
    """The services', the processors' and the edge's pids."""
    stack = LocalStack(settings, environ={})
    records = {**stack.state.load(), **Components(stack).state.load()}
    return {name: record.pid for name, record in records.items()}


def runs(process: psutil.Process) -> bool:
    """Whether ``process`` (the very one, not a later one with its pid) has not exited."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def topic_names(settings: DevStackSettings) -> set[str]:
    async def list_topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{settings.kafka_port}")
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(list_topics())


def test_up_starts_every_service_processor_and_the_edge_and_creates_the_declared_topics(
    settings: DevStackSettings,
) -> None:
    result = conveyor(settings, "dev", "up")
    assert result.returncode == 0, result.stderr
    for service in ("postgres", "redis", "kafka", "smtp", "payments"):
        assert f"{service}: healthy" in result.stderr
    for spec in CATALOGUE:
        assert f"{spec.name}: running" in result.stderr
        assert answers_ok(
            f"http://127.0.0.1:{settings.metrics_base_port + spec.metrics_port_offset}/metrics"
        )
    assert "api: running" in result.stderr
    ready = f"http://127.0.0.1:{settings.api_port}/readyz"
    log = settings.home / "logs" / "api.log"
    eventually(
        lambda: answers_ok(ready),
        f"{ready} answers",
        within=30,
        context=lambda: log.read_text()[-3000:],
    )
    assert f"http://127.0.0.1:{settings.api_port}/api/v1" in result.stderr
    assert {topic.name for topic in declared_topics()} <= topic_names(settings)
    env_file = (settings.home / "stack.env").read_text()
    assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{settings.kafka_port}" in env_file
    assert "prometheus: running" in result.stderr
    assert f"Prometheus: http://127.0.0.1:{settings.prometheus_port}" in result.stderr
    prometheus = f"http://127.0.0.1:{settings.prometheus_port}/api/v1"

    def every_component_scraped() -> bool:
        targets = httpx.get(f"{prometheus}/targets", timeout=5).json()["data"]["activeTargets"]
        return len(targets) == len(CATALOGUE) + 1 and all(t["health"] == "up" for t in targets)

    eventually(
        every_component_scraped,
        "Prometheus scrapes every component",
        within=60,
        context=lambda: httpx.get(f"{prometheus}/targets").text,
    )
    groups = httpx.get(f"{prometheus}/rules", timeout=5).json()["data"]["groups"]
    assert {"conveyor-recording", "conveyor-alerts"} <= {group["name"] for group in groups}
    # Each process its own log, the payment gateway's apart from the payments processor's.
    logs = settings.home / "logs"
    assert "Running on" in (logs / "payment-gateway.log").read_text()
    assert "Running on" not in (logs / "payments.log").read_text()


def test_up_twice_in_a_row_leaves_the_running_services_alone(
    settings: DevStackSettings,
) -> None:
    before = stack_pids(settings)
    result = conveyor(settings, "dev", "up")
    assert result.returncode == 0, result.stderr
    assert stack_pids(settings) == before
    assert result.stderr.count("already running") == 5 + len(COMPONENTS)


def test_status_shows_every_service_healthy_with_its_address(settings: DevStackSettings) -> None:
    result = conveyor(settings, "dev", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "running" in line]
    assert len(rows) == 5 + len(COMPONENTS)
    assert all("healthy" in row and "unhealthy" not in row for row in rows)
    assert f"127.0.0.1:{settings.kafka_port}" in result.stdout


def test_a_killed_kafka_is_reported_and_up_brings_it_back_with_its_topics(
    settings: DevStackSettings,
) -> None:
    kafka_pid = stack_pids(settings)["kafka"]
    kafka = LocalStack(settings, environ={}).state.load()["kafka"]
    os.kill(kafka_pid, signal.SIGKILL)
    eventually(lambda: not kafka.is_alive(), "the killed Kafka has exited", within=10)

    status = conveyor(settings, "dev", "status")
    assert status.returncode == 1
    kafka_row = next(line for line in status.stdout.splitlines() if "kafka" in line)
    assert "stopped" in kafka_row
    assert "unhealthy" in kafka_row

    result = conveyor(settings, "dev", "up")
    assert result.returncode == 0, result.stderr
    assert stack_pids(settings)["kafka"] != kafka_pid
    assert {topic.name for topic in declared_topics()} <= topic_names(settings)
    assert conveyor(settings, "dev", "status").returncode == 0


def test_down_stops_every_process_it_started_and_nothing_else(
    settings: DevStackSettings,
) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pids = stack_pids(settings)
        # The edge serves with a uvicorn worker per CPU, each a child of the recorded process.
        edge_workers = psutil.Process(pids["api"]).children(recursive=True)
        result = conveyor(settings, "dev", "down")
        assert result.returncode == 0, result.stderr
        assert not [
            pid
            for pid in pids.values()
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        assert not [worker for worker in edge_workers if runs(worker)]
        for port in (
            settings.kafka_port,
            settings.postgres_port,
            settings.redis_port,
            settings.api_port,
        ):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0
        assert bystander.poll() is None
        again = conveyor(settings, "dev", "down")
        assert "nothing was running" in again.stderr
    finally:
        bystander.kill()
        bystander.wait()


def test_a_service_that_cannot_start_is_reported_with_its_log_and_what_to_do(
    tmp_path: Path,
) -> None:
    settings = DevStackSettings.isolated(tmp_path / "broken")
    children_before = {child.pid for child in psutil.Process().children()}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.redis_port))
        squatter.listen()
        stack = LocalStack(settings, environ={})
        try:
            with pytest.raises(ServiceDidNotStart) as refused:
                stack.up()
        finally:
            stack.down(purge=True)
    message = str(refused.value)
    # The failed service is reaped, not left behind as a zombie of this process.
    assert not [
        child
        for child in psutil.Process().children()
        if child.pid not in children_before and child.status() == psutil.STATUS_ZOMBIE
    ]
    assert "redis exited" in message
    assert "Address already in use" in message
    assert "conveyor dev up" in message


def test_an_existing_service_url_that_answers_nothing_is_refused_with_advice(
    tmp_path: Path,
) -> None:
    settings = DevStackSettings.isolated(tmp_path / "external")
    nothing_listens = f"redis://127.0.0.1:{settings.redis_port}/0"
    stack = LocalStack(settings, environ={"REDIS_URL": nothing_listens})
    try:
        with pytest.raises(DevStackError) as refused:
            stack.up()
    finally:
        stopped = stack.down(purge=True)
    assert stopped == [], "nothing is started before every existing service is checked"
    assert "REDIS_URL is set, but nothing healthy answers there" in str(refused.value)
