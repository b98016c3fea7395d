"""A real API server's verdict: every manifest is accepted, and the operator's role is least
privilege: what it needs in the namespaces it serves, nothing in any other, and nothing of the
cluster unless the cluster-wide overlay is installed.

The tests share the session's control plane with others, so what they create for real lives
in a namespace of their own, and cluster-wide objects carry a unique suffix; both are removed
at the end. The CRDs are applied for real (a custom resource can only be checked against its
CRD) and stay, as other tests use them too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.devstack.control_plane import ControlPlane
from tests.manifests.conftest import (
    CLUSTER_WIDE,
    INSTALL,
    MANIFESTS,
    SECRETS_EXAMPLE,
    Document,
    Kustomize,
    documents,
    kustomizations,
    label,
)
from tests.manifests.permissions import CLUSTER_WIDE_ONLY, NEEDED, REFUSED, Access
from tests.support.waiting import eventually

ELSEWHERE = "somewhere-else"
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


@dataclass(frozen=True)
class Sandbox:
    """A namespace of these tests; the manifests' namespace is moved into it."""

    cluster: ControlPlane
    namespace: str
    suffix: str

    def relocate(self, objects: list[Document]) -> list[Document]:
        moved: list[Document] = json.loads(json.dumps(objects))
        for item in moved:
            if item["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in item["metadata"], item["metadata"]
            else:
                # Every namespaced object names its namespace, so no render depends on
                # kubectl's current one (an overlay may name more than `conveyor`).
                assert item["metadata"].get("namespace"), item["metadata"]
                item["metadata"]["namespace"] = self.namespace
            for subject in item.get("subjects", []):
                subject["namespace"] = self.namespace
            # The admission policy's parameters, in the manifests' namespace.
            parameters = item.get("spec", {}).get("paramRef")
            if parameters is not None:
                parameters["namespace"] = self.namespace
        return moved


@pytest.fixture(scope="module")
def sandbox(crds_installed: ControlPlane) -> Iterator[Sandbox]:
    # manifests/ installs the CRDs of crds/, which the session installed.
    cluster = crds_installed
    suffix = uuid.uuid4().hex[:8]
    name = f"manifests-{suffix}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield Sandbox(cluster, name, suffix)
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


SOURCES = [*kustomizations(), INSTALL, SECRETS_EXAMPLE]


@pytest.mark.parametrize(
    "source",
    SOURCES,
    ids=[label(source) if source.is_dir() else source.name for source in SOURCES],
)
def test_every_manifest_passes_server_side_dry_run(
    sandbox: Sandbox, kustomize: Kustomize, source: Path
) -> None:
    objects = kustomize.render(source) if source.is_dir() else documents(source.read_text())
    assert objects
    body = {"apiVersion": "v1", "kind": "List", "items": sandbox.relocate(objects)}
    applied = sandbox.cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--field-manager=conveyor-manifests-test",
        "-o",
        "json",
        "-f",
        "-",
        input_text=json.dumps(body),
    )
    accepted = json.loads(applied.stdout)
    items = accepted["items"] if accepted.get("kind") == "List" else [accepted]
    assert len(items) == len(objects)


@dataclass(frozen=True)
class Operator:
    """The operator's RBAC objects applied for real, and who its ServiceAccount is."""

    cluster: ControlPlane
    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def can(self, access: Access, namespace: str) -> bool:
        subresource = [f"--subresource={access.subresource}"] if access.subresource else []
        answered = self.cluster.kubectl(
            "auth",
            "can-i",
            access.verb,
            access.resource,
            *subresource,
            f"--namespace={namespace}",
            f"--as={self.user}",
            check=False,
        )
        if "the server doesn't have a resource type" in answered.stderr:
            return self._review(access, namespace)
        answer = answered.stdout.strip()
        assert answer in ("yes", "no"), f"{access}: {answered.stdout}{answered.stderr}"
        return answer == "yes"

    def _review(self, access: Access, namespace: str) -> bool:
        """The SubjectAccessReview `can-i` sends, made by hand for a kind the server does not
        serve (ServiceMonitor without the Prometheus Operator): kubectl then drops the group."""
        resource, _, group = access.resource.partition(".")
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": self.user,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{self.namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": access.verb,
                    "group": group,
                    "resource": resource,
                    "subresource": access.subresource,
                },
            },
        }
        answered = self.cluster.kubectl(
            "create", "-o", "json", "-f", "-", input_text=json.dumps(review)
        )
        return bool(json.loads(answered.stdout)["status"].get("allowed", False))


def _granted(sandbox: Sandbox, rbac: list[Document]) -> Iterator[Operator]:
    """``rbac`` (the account and its grants, moved into the sandbox) applied, until the end."""
    for item in rbac:
        # Cluster-wide names are shared by every test of the session: make these unique.
        if item["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            item["metadata"]["name"] += f"-{sandbox.suffix}"
        if item["kind"] == "ClusterRoleBinding":
            item["roleRef"]["name"] += f"-{sandbox.suffix}"
    [account] = [item for item in rbac if item["kind"] == "ServiceAccount"]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac})
    sandbox.cluster.kubectl("apply", "--server-side", "-f", "-", input_text=body)
    operator = Operator(sandbox.cluster, sandbox.namespace, account["metadata"]["name"])
    try:
        # The authorizer learns of a new binding through a watch, a moment later.
        eventually(
            lambda: operator.can(NEEDED[0], sandbox.namespace),
            "the operator's account is granted what it needs",
            within=30,
            interval=0.2,
        )
        yield operator
    finally:
        for item in rbac:
            if item["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                sandbox.cluster.kubectl(
                    "delete", item["kind"], item["metadata"]["name"], "--ignore-not-found"
                )


@pytest.fixture(scope="module")
def operator_account(sandbox: Sandbox, kustomize: Kustomize) -> Iterator[Operator]:
    """The default installation's account: it serves the sandbox, as it would `conveyor`."""
    yield from _granted(sandbox, sandbox.relocate(kustomize.render(MANIFESTS / "rbac")))


@pytest.fixture(scope="module")
def cluster_wide_account(crds_installed: ControlPlane, kustomize: Kustomize) -> Iterator[Operator]:
    """The cluster-wide overlay's account, in a sandbox of its own."""
    suffix = uuid.uuid4().hex[:8]
    sandbox = Sandbox(crds_installed, f"cluster-wide-{suffix}", suffix)
    crds_installed.kubectl("create", "namespace", sandbox.namespace)
    rbac_kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rbac = [item for item in kustomize.render(CLUSTER_WIDE) if item["kind"] in rbac_kinds]
    try:
        yield from _granted(sandbox, sandbox.relocate(rbac))
    finally:
        crds_installed.kubectl("delete", "namespace", sandbox.namespace, "--wait=false")


@pytest.mark.parametrize("access", NEEDED, ids=str)
def test_the_operator_may_do_what_it_needs_in_a_namespace_it_serves(
    operator_account: Operator, access: Access
) -> None:
    assert operator_account.can(access, operator_account.namespace)


@pytest.mark.parametrize("access", REFUSED + CLUSTER_WIDE_ONLY, ids=str)
def test_the_operator_may_do_nothing_more_in_a_namespace_it_serves(
    operator_account: Operator, access: Access
) -> None:
    assert not operator_account.can(access, operator_account.namespace)


@pytest.mark.parametrize("access", NEEDED + REFUSED + CLUSTER_WIDE_ONLY, ids=str)
def test_the_operator_may_do_nothing_in_a_namespace_it_does_not_serve(
    operator_account: Operator, access: Access
) -> None:
    # Reading a Secret there above all: a StreamProcessor elsewhere cannot borrow its rights.
    assert not operator_account.can(access, ELSEWHERE)


@pytest.mark.parametrize("access", NEEDED + CLUSTER_WIDE_ONLY, ids=str)
def test_the_cluster_wide_operator_may_do_what_it_needs_in_any_namespace(
    cluster_wide_account: Operator, access: Access
) -> None:
    assert cluster_wide_account.can(access, ELSEWHERE)


@pytest.mark.parametrize("access", REFUSED, ids=str)
def test_the_cluster_wide_operator_may_do_nothing_more(
    cluster_wide_account: Operator, access: Access
) -> None:
    assert not cluster_wide_account.can(access, ELSEWHERE)
