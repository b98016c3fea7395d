"""What the operator adds between `kubectl apply` and running pods, on a real control plane.

Baseline: the very objects the operator would create for a set of StreamProcessors (from
``conveyor.operator.children``), applied directly with kubectl, until their Deployments are
available. Measured: the StreamProcessors themselves applied, until the operator reports them
Ready. Also: how soon a deleted child is back (the operator's repair latency).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from conveyor.devstack.control_plane import REPOSITORY, ControlPlane, start_control_plane
from conveyor.devstack.launched import Launched
from conveyor.devstack.processes import wait_until
from conveyor.devstack.settings import free_ports
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.domain.resources import StreamProcessorSpec
from conveyor.infra.settings import ServiceUrls
from conveyor.operator import children

PROCESSORS = 8
REPAIRS = 10


def _processor(index: int, bootstrap: str) -> dict[str, Any]:
    return {
        "processor": PROCESSOR_NAMES[index % len(PROCESSOR_NAMES)],
        "image": "conveyor:bench",
        "replicas": 1,
        "kafka": {"bootstrapServers": bootstrap},
        "state": {"store": "memory"},
    }


def _wait(check: Callable[[], bool], what: str, timeout: float = 300.0) -> float:
    """Seconds until ``check`` holds."""
    started = time.perf_counter()
    if not wait_until(check, timeout, interval=0.05):
        raise TimeoutError(f"{what} not done after {timeout} s")
    return time.perf_counter() - started


def _items(plane: ControlPlane, namespace: str, kind: str) -> list[dict[str, Any]]:
    found = plane.kubectl("-n", namespace, "get", kind, "-o", "json")
    items: list[dict[str, Any]] = json.loads(found.stdout)["items"]
    return items


def _apply(plane: ControlPlane, namespace: str, objects: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    plane.kubectl("-n", namespace, "apply", "-f", "-", input_text=body)


def _all_ready(plane: ControlPlane, namespace: str) -> bool:
    found = _items(plane, namespace, "streamprocessors")
    return len(found) == PROCESSORS and all(
        (item.get("status") or {}).get("phase") == "Running" for item in found
    )


def _all_available(plane: ControlPlane, namespace: str) -> bool:
    found = _items(plane, namespace, "deployments")
    return len(found) == PROCESSORS and all(
        (item.get("status") or {}).get("availableReplicas") == 1 for item in found
    )


def _start_operator(plane: ControlPlane, urls: ServiceUrls, log: Path) -> Launched:
    metrics_port, liveness_port = free_ports(2)
    environment = {
        **os.environ,
        "KUBECONFIG": str(plane.kubeconfig),
        "KAFKA_BOOTSTRAP_SERVERS": urls.kafka_bootstrap_servers,
        "CONVEYOR_OPERATOR_METRICS_HOST": "127.0.0.1",
        "CONVEYOR_OPERATOR_METRICS_PORT": str(metrics_port),
        "CONVEYOR_OPERATOR_LIVENESS_PORT": str(liveness_port),
    }
    command = [sys.executable, "-m", "conveyor", "operator"]
    operator = Launched("the operator", command, log, environment)
    operator.start(f"http://127.0.0.1:{liveness_port}/healthz")
    return operator


def _measure(console: Console, plane: ControlPlane, urls: ServiceUrls) -> dict[str, float]:
    bootstrap = urls.kafka_bootstrap_servers
    plane.kubectl("apply", "--server-side", "-k", str(REPOSITORY / "crds"))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/streamprocessors.conveyor.dev",
        "--timeout=60s",
    )
    for namespace in ("bench-direct", "bench-operator"):
        plane.kubectl("create", "namespace", namespace)

    console.log(f"operator benchmark: {PROCESSORS} processors' children applied directly")
    direct = []
    for index in range(PROCESSORS):
        spec = StreamProcessorSpec.model_validate(_processor(index, bootstrap))
        owner = children.Owner(f"p{index}", "bench-direct", "", spec)
        for item in children.owned_objects(owner, replicas=1):
            del item["metadata"]["ownerReferences"]
            direct.append(item)
    started = time.perf_counter()
    _apply(plane, "bench-direct", direct)
    direct_seconds = (
        time.perf_counter()
        - started
        + _wait(lambda: _all_available(plane, "bench-direct"), "the Deployments available")
    )

    console.log(f"operator benchmark: {PROCESSORS} StreamProcessors through the operator")
    resources = [
        {
            "apiVersion": "conveyor.dev/v1alpha1",
            "kind": "StreamProcessor",
            "metadata": {"name": f"p{index}"},
            "spec": _processor(index, bootstrap),
        }
        for index in range(PROCESSORS)
    ]
    started = time.perf_counter()
    _apply(plane, "bench-operator", resources)
    operator_seconds = (
        time.perf_counter()
        - started
        + _wait(lambda: _all_ready(plane, "bench-operator"), "the StreamProcessors Ready")
    )

    console.log(f"operator benchmark: {REPAIRS} deleted ConfigMaps repaired")
    repairs = []
    for _ in range(REPAIRS):
        plane.kubectl("-n", "bench-operator", "delete", "configmap", "p0-config")
        repairs.append(
            _wait(
                lambda: (
                    plane.kubectl(
                        "-n", "bench-operator", "get", "configmap", "p0-config", check=False
                    ).returncode
                    == 0
                ),
                "the ConfigMap restored",
            )
        )
    return {
        "direct": direct_seconds,
        "operator": operator_seconds,
        "repair_p50": statistics.median(repairs),
        "repair_max": max(repairs),
    }


def run(console: Console, urls: ServiceUrls) -> None:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-k8s-") as home:
        console.log("operator benchmark: starting the control plane")
        plane = start_control_plane(Path(home) / "cluster")
        operator = _start_operator(plane, urls, Path(home) / "operator.log")
        try:
            figures = _measure(console, plane, urls)
        finally:
            operator.stop()
            plane.stop()
    table = Table(title=f"The operator: {PROCESSORS} processors (memory store, 1 replica each)")
    for column in ("what", "time", "ratio"):
        table.add_column(column, justify="right")
    table.add_row(
        "children applied directly until available (baseline)", f"{figures['direct']:.2f} s", "1.00"
    )
    table.add_row(
        "StreamProcessors applied until Ready",
        f"{figures['operator']:.2f} s",
        f"{figures['operator'] / figures['direct']:.2f}",
    )
    table.add_row(
        f"a deleted ConfigMap back (p50 of {REPAIRS}; max)",
        f"{figures['repair_p50'] * 1000:.0f} ms; {figures['repair_max'] * 1000:.0f} ms",
        "",
    )
    console.print(table)
