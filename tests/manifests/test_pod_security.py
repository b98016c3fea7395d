"""Every pod Conveyor runs is admitted where the "restricted" Pod Security profile is enforced,
as the conveyor namespace enforces it: checked by a real API server's PodSecurity admission."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conveyor.devstack.control_plane import ControlPlane
from conveyor.domain.resources import StreamProcessorSpec
from conveyor.operator.children import Owner, owned_objects
from tests.manifests.conftest import KIND, MANIFESTS, Document, Kustomize, of_kind

WORKLOADS = ("Deployment", "StatefulSet")


def pod_of(workload: Document) -> Document:
    """The pod a Deployment or StatefulSet would create, its claims standing for volumes."""
    spec: dict[str, Any] = json.loads(json.dumps(workload["spec"]["template"]["spec"]))
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        name = claim["metadata"]["name"]
        claimed = {"name": name, "persistentVolumeClaim": {"claimName": f"{name}-0"}}
        spec.setdefault("volumes", []).append(claimed)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{workload['metadata']['name']}-0"},
        "spec": spec,
    }


def processors_workloads() -> list[Document]:
    found = []
    for store in ("rocksdb", "memory"):
        spec = StreamProcessorSpec.model_validate(
            {
                "processor": "orders",
                "image": "conveyor:1.0",
                "kafka": {"secretRef": {"name": "conveyor-orders"}},
                "envFromSecrets": ["conveyor-orders"],
                "state": {"store": store},
                "canary": {"image": "conveyor:1.1"},
            }
        )
        owner = Owner(f"orders-{store}", "shop", "uid", spec)
        found += [item for item in owned_objects(owner, 1) if item["kind"] in WORKLOADS]
    return found


@dataclass(frozen=True)
class Restricted:
    """A namespace enforcing the restricted profile."""

    cluster: ControlPlane
    name: str

    def create(self, pod: Document) -> subprocess.CompletedProcess[str]:
        """The API server's answer to creating ``pod`` (dry run: nothing is kept)."""
        return self.cluster.kubectl(
            "-n",
            self.name,
            "create",
            "--dry-run=server",
            "-f",
            "-",
            input_text=json.dumps(pod),
            check=False,
        )


@pytest.fixture(scope="module")
def restricted(crds_installed: ControlPlane) -> Iterator[Restricted]:
    name = f"restricted-{uuid.uuid4().hex[:8]}"
    crds_installed.kubectl("create", "namespace", name)
    crds_installed.kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
    )
    try:
        yield Restricted(crds_installed, name)
    finally:
        crds_installed.kubectl("delete", "namespace", name, "--wait=false")


def test_the_conveyor_namespace_enforces_the_restricted_profile(
    kustomize: Kustomize,
) -> None:
    [namespace] = of_kind(kustomize.render(MANIFESTS), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_of_the_installation_the_kind_overlay_and_the_operator_is_admitted(
    kustomize: Kustomize, restricted: Restricted
) -> None:
    workloads = [
        *(item for item in kustomize.render(KIND) if item["kind"] in WORKLOADS),
        *processors_workloads(),
    ]
    names = {item["metadata"]["name"] for item in workloads}
    assert {"conveyor-edge", "conveyor-operator", "orders-rocksdb", "orders-memory-canary"} <= names
    for workload in workloads:
        answer = restricted.create(pod_of(workload))
        assert answer.returncode == 0, f"{workload['metadata']['name']}: {answer.stderr}"
        assert "Warning" not in answer.stderr, answer.stderr


def test_a_pod_asking_for_root_is_refused_there_so_the_admission_above_means_something(
    restricted: Restricted,
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "root", "image": "conveyor:1.0"}]},
    }
    answer = restricted.create(pod)
    assert answer.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in answer.stderr
