"""The operator as users run it: `conveyor operator` as a process against a real control plane.

The CRDs are applied once. The control plane's default StorageClass provisions volumes, so
StatefulSet pods get their claims bound and run on the kwok node. Each test works in a
namespace of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from tests.cluster import Cluster
from tests.conftest import RunningStack

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None],
    what: str,
    timeout: float = 90.0,
    context: Callable[[], str] | None = None,
) -> T:
    """Polls ``check`` until it returns something other than None/False; fails saying what
    (and what ``context`` tells of the state then)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None and last is not False:
            return last
        time.sleep(0.5)
    told = f"\n{context()}" if context is not None else ""
    raise AssertionError(f"not true after {timeout} s: {what} (last seen: {last!r}){told}")


@dataclass
class OperatorProcess:
    cluster: Cluster
    bootstrap_servers: str
    log_path: Path
    metrics_port: int = 0
    liveness_port: int = 0
    launched: Launched | None = None
    runs: int = 0

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_ports(2)
        self.runs += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "CONVEYOR_OPERATOR_METRICS_HOST": "127.0.0.1",
            "CONVEYOR_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "CONVEYOR_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            # Short beats so drift in Kafka and lag changes are seen within seconds.
            "CONVEYOR_OPERATOR_RESYNC_SECONDS": "2",
            "CONVEYOR_OPERATOR_TOPIC_RESYNC_SECONDS": "2",
        }
        command = [sys.executable, "-m", "conveyor", "operator"]
        self.launched = Launched(f"the operator (run {self.runs})", command, self.log_path, env)
        self.launched.start(f"http://127.0.0.1:{self.liveness_port}/healthz")

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to finish what it was doing."""
        assert self.launched is not None
        self.launched.kill()

    def stop(self) -> None:
        if self.launched is not None:
            self.launched.stop()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples that carry ``labels``."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def log(self, characters: int = 6000) -> str:
        return "" if self.launched is None else self.launched.log(characters)


@pytest.fixture(scope="session")
def operator(
    crds_installed: Cluster, stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
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


@dataclass(frozen=True)
class Namespace:
    """A namespace of one test, with kubectl scoped to it."""

    name: str
    cluster: Cluster

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.name, *args, input_text=input_text, check=check)

    def apply(self, *objects: dict[str, Any]) -> None:
        body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("apply", "-f", "-", input_text=json.dumps(body))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = self.kubectl("get", kind, name, "-o", "json", check=False)
        if found.returncode != 0:
            if "NotFound" in found.stderr:
                return None
            raise AssertionError(found.stderr)
        result: dict[str, Any] = json.loads(found.stdout)
        return result

    def names(self, kind: str, selector: str) -> list[str]:
        found = json.loads(self.kubectl("get", kind, "-l", selector, "-o", "json").stdout)
        return sorted(item["metadata"]["name"] for item in found["items"])

    def events(self, involving: str) -> list[dict[str, Any]]:
        found = json.loads(
            self.kubectl(
                "get",
                "events",
                "--field-selector",
                f"involvedObject.name={involving}",
                "-o",
                "json",
            ).stdout
        )
        items: list[dict[str, Any]] = found["items"]
        return items


@pytest.fixture
def namespace(crds_installed: Cluster) -> Iterator[Namespace]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    crds_installed.kubectl("create", "namespace", name)
    yield Namespace(name, crds_installed)
    crds_installed.kubectl("delete", "namespace", name, "--wait=false")
