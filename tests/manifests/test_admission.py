"""The admission policy of manifests/admission on a real API server: which StreamProcessors it
lets through, and what a refused author reads.

The session's control plane is shared, so the policy and its binding get a unique suffix and
judge only the namespaces these tests label; its parameters live in one of those namespaces.
"""

from __future__ import annotations

import ast
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from conveyor.devstack.control_plane import ControlPlane
from conveyor.domain.resources import StreamProcessorSpec
from conveyor.operator.children import Owner, config_map, workload
from tests.manifests.conftest import MANIFESTS, Document, Kustomize, of_kind
from tests.support.operator import stream_processor as processor_resource
from tests.support.waiting import eventually

ALLOWED = "registry.example.com/, conveyor"
REFUSED_IMAGE = "elsewhere.example.org/conveyor:1.0"


def stream_processor(name: str, **spec: Any) -> Document:
    return processor_resource(name, "kafka:9092", **spec)


@dataclass(frozen=True)
class Guarded:
    """The policy installed for these tests, judging the namespaces labelled ``label``."""

    cluster: ControlPlane
    namespace: str
    label: str

    def apply(
        self, body: Document, namespace: str | None = None, dry_run: bool = True
    ) -> subprocess.CompletedProcess[str]:
        server = ["--dry-run=server"] if dry_run else []
        return self.cluster.kubectl(
            "-n",
            namespace or self.namespace,
            "apply",
            *server,
            "-f",
            "-",
            input_text=json.dumps(body),
            check=False,
        )

    def refusal(self, body: Document, namespace: str | None = None) -> str:
        answer = self.apply(body, namespace)
        assert answer.returncode != 0, f"{body['spec']} was admitted"
        return " ".join(answer.stderr.split())

    def admits(self, body: Document) -> None:
        answer = self.apply(body)
        assert answer.returncode == 0, answer.stderr

    def guard(self, namespace: str) -> None:
        """Label ``namespace`` for the policy, and wait until the API server judges it."""
        self.cluster.kubectl("label", "namespace", namespace, f"{self.label}=guarded")
        probe = stream_processor("probe", image=REFUSED_IMAGE)
        eventually(
            lambda: self.apply(probe, namespace).returncode != 0,
            f"the policy judges StreamProcessors in {namespace}",
        )


@pytest.fixture(scope="module")
def guarded(crds_installed: ControlPlane, kustomize: Kustomize) -> Iterator[Guarded]:
    cluster = crds_installed
    suffix = uuid.uuid4().hex[:8]
    namespace = f"admission-{suffix}"
    label = f"conveyor.dev/admission-test-{suffix}"
    objects = kustomize.render(MANIFESTS / "admission")
    [parameters] = of_kind(objects, "ConfigMap")
    parameters["metadata"]["namespace"] = namespace
    parameters["data"]["imageRegistries"] = ALLOWED
    [policy] = of_kind(objects, "ValidatingAdmissionPolicy")
    policy["metadata"]["name"] += f"-{suffix}"
    [binding] = of_kind(objects, "ValidatingAdmissionPolicyBinding")
    binding["metadata"]["name"] += f"-{suffix}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["paramRef"]["namespace"] = namespace
    # As shipped it judges every namespace; here only those of these tests.
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {label: "guarded"}}}
    cluster.kubectl("create", "namespace", namespace)
    body = {"apiVersion": "v1", "kind": "List", "items": objects}
    try:
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(body))
        installed = Guarded(cluster, namespace, label)
        installed.guard(namespace)
        yield installed
    finally:
        for kind, item in (
            ("validatingadmissionpolicybinding", binding),
            ("validatingadmissionpolicy", policy),
        ):
            cluster.kubectl("delete", kind, item["metadata"]["name"], "--ignore-not-found")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize(
    "images",
    [
        {"image": "registry.example.com/shop/conveyor:1.2"},
        {"image": "conveyor:0.1.0"},
        {"image": "conveyor@sha256:" + "a" * 64},
        {"image": "conveyor:1.0", "canary": {"image": "registry.example.com/conveyor:1.1"}},
    ],
    ids=["under-a-registry", "a-tag-of-the-repository", "a-digest", "with-a-canary"],
)
def test_processors_whose_images_come_from_the_allowed_list_are_admitted(
    guarded: Guarded, images: dict[str, Any]
) -> None:
    guarded.admits(
        stream_processor(
            "allowed",
            env=[{"name": "CONVEYOR_REPLICATION_FACTOR", "value": "3"}],
            resources={"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}},
            **images,
        )
    )


@pytest.mark.parametrize(
    ("images", "refused"),
    [
        ({"image": REFUSED_IMAGE}, REFUSED_IMAGE),
        # Without the trailing "/", registry.example.com would have let this through.
        ({"image": "registry.example.com.evil.io/conveyor:1"}, "registry.example.com.evil.io"),
        ({"image": "conveyor-tools:1"}, "conveyor-tools:1"),
        ({"image": "conveyor/other:1"}, "conveyor/other:1"),
        ({"canary": {"image": "docker.io/someone/conveyor:1"}}, "docker.io/someone/conveyor:1"),
    ],
    ids=["another-registry", "a-lookalike-host", "a-lookalike-name", "a-path", "the-canary"],
)
def test_an_image_from_elsewhere_is_refused_naming_it_and_where_the_list_is_kept(
    guarded: Guarded, images: dict[str, Any], refused: str
) -> None:
    told = guarded.refusal(stream_processor("elsewhere", **images))
    assert f"image {refused}" in told
    assert f"is not from a registry allowed for StreamProcessors (allowed: {ALLOWED})" in told
    assert f"imageRegistries of ConfigMap {guarded.namespace}/conveyor-admission" in told


@pytest.mark.parametrize(
    "variable", ["CONVEYOR_TOPICS", "CONVEYOR_DATA_DIR", "KAFKA_BOOTSTRAP_SERVERS"]
)
def test_env_that_would_override_what_the_operator_sets_is_refused(
    guarded: Guarded, variable: str
) -> None:
    told = guarded.refusal(stream_processor("override", env=[{"name": variable, "value": "x"}]))
    assert f"spec.env may not set {variable}: the operator sets it for every pod" in told


@pytest.mark.parametrize("variable", ["LD_PRELOAD", "PYTHONPATH", "PYTHONSTARTUP", "https_proxy"])
def test_env_that_would_change_what_code_runs_or_where_requests_go_is_refused(
    guarded: Guarded, variable: str
) -> None:
    told = guarded.refusal(stream_processor("loader", env=[{"name": variable, "value": "/x"}]))
    assert f"spec.env may not set {variable}: loader (LD_*), Python (PYTHON*) and proxy" in told


def test_resources_beyond_requests_and_limits_are_refused(guarded: Guarded) -> None:
    claims = {"limits": {"memory": "256Mi"}, "claims": [{"name": "gpu"}]}
    told = guarded.refusal(stream_processor("devices", resources=claims))
    assert "spec.resources may hold requests and limits only, not claims" in told


def test_a_processor_admitted_before_the_policy_keeps_working_until_its_image_changes(
    guarded: Guarded,
) -> None:
    earlier = f"earlier-{uuid.uuid4().hex[:8]}"
    guarded.cluster.kubectl("create", "namespace", earlier)
    try:
        old = stream_processor(
            "old", image=REFUSED_IMAGE, env=[{"name": "PYTHONPATH", "value": "/opt/extra"}]
        )
        created = guarded.apply(old, earlier, dry_run=False)
        assert created.returncode == 0, created.stderr
        guarded.guard(earlier)
        # What the operator does to it (an annotation, as Kopf's progress) and any change
        # the rules are not about are admitted; so is deleting it.
        annotated = guarded.cluster.kubectl(
            "-n", earlier, "annotate", "sp", "old", "conveyor.dev/note=kept", check=False
        )
        assert annotated.returncode == 0, annotated.stderr
        old["spec"]["replicas"] = 2
        assert guarded.apply(old, earlier, dry_run=False).returncode == 0
        moved = json.loads(json.dumps(old))
        moved["spec"]["image"] = "elsewhere.example.org/conveyor:1.1"
        assert "image elsewhere.example.org/conveyor:1.1 is not from" in guarded.refusal(
            moved, earlier
        )
        deleted = guarded.cluster.kubectl("-n", earlier, "delete", "sp", "old", check=False)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        guarded.cluster.kubectl("delete", "namespace", earlier, "--wait=false")


def test_the_policy_protects_exactly_the_variables_the_operator_sets() -> None:
    policy = yaml.safe_load((MANIFESTS / "admission" / "policy.yaml").read_text())
    [listed] = [v for v in policy["spec"]["variables"] if v["name"] == "operatorSettings"]
    protected = set(ast.literal_eval(listed["expression"]))
    spec = StreamProcessorSpec.model_validate(
        {"processor": "orders", "image": "conveyor:1", "kafka": {"bootstrapServers": "k:9092"}}
    )
    owner = Owner("orders", "shop", "uid", spec)
    container = workload(owner, 1)["spec"]["template"]["spec"]["containers"][0]
    set_by_operator = set(config_map(owner)["data"]) | {item["name"] for item in container["env"]}
    assert protected == set_by_operator
