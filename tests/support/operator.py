"""The operator as users run it (``conveyor operator``, a process against a real control plane),
and a namespace of one test with kubectl scoped to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.control_plane import ControlPlane
from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from tests.support.waiting import eventually


@dataclass
class OperatorProcess:
    cluster: ControlPlane
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


@dataclass(frozen=True)
class Namespace:
    """A namespace of one test, with kubectl scoped to it."""

    name: str
    cluster: ControlPlane

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

    def alone(self) -> None:
        """Wait until no StreamProcessor of an earlier test, in a namespace still being
        deleted, is left: until the operator lets it go, it still reconciles, and one for
        the same processor acts on the same consumer group as this test's."""

        def others() -> list[str]:
            found = json.loads(
                self.cluster.kubectl("get", "streamprocessors", "-A", "-o", "json").stdout
            )
            return [
                f"{item['metadata']['namespace']}/{item['metadata']['name']}"
                for item in found["items"]
                if item["metadata"]["namespace"] != self.name
            ]

        eventually(others, "no StreamProcessor of an earlier test left", until=lambda o: not o)

    def names(self, kind: str, selector: str) -> list[str]:
        found = json.loads(self.kubectl("get", kind, "-l", selector, "-o", "json").stdout)
        return sorted(item["metadata"]["name"] for item in found["items"])

    def events(self, involving: str, *reasons: str) -> list[dict[str, Any]]:
        """The events about ``involving``, once there is one of each of ``reasons``.

        Kopf posts events from a queue of its own, so an event may trail the status or the
        effect it tells of: a test waits for the events it is about to read.
        """

        def posted() -> list[dict[str, Any]] | None:
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
            seen = {item["reason"] for item in items}
            return items if seen.issuperset(reasons) else None

        return eventually(posted, f"events {', '.join(reasons)} about {involving}")


def stream_processor(name: str, bootstrap: str, **spec: Any) -> dict[str, Any]:
    """An inventory StreamProcessor at two replicas; ``spec`` adds to or replaces its fields."""
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "StreamProcessor",
        "metadata": {"name": name},
        "spec": {
            "processor": "inventory",
            "image": "conveyor:1.0",
            "replicas": 2,
            "kafka": {"bootstrapServers": bootstrap},
            **spec,
        },
    }
