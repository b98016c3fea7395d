"""The committed files are what their sources render, and the overlays keep the base whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.operator.crds import definitions
from tests.manifests.conftest import (
    ANOTHER_NAMESPACE,
    CLUSTER_WIDE,
    CRDS,
    INSTALL,
    INSTALL_HEADER,
    KIND,
    MANIFESTS,
    SECRETS_EXAMPLE,
    Document,
    Kustomize,
    kustomizations,
    of_kind,
)

pytestmark = pytest.mark.cluster  # kubectl comes from scripts/control-plane


def test_install_yaml_is_a_fresh_render_of_the_tree(kustomize: Kustomize) -> None:
    assert INSTALL.read_text() == INSTALL_HEADER + kustomize.render_text(MANIFESTS), (
        "manifests/install.yaml is out of date: run `make manifests` and commit the result"
    )


def test_the_crds_kustomization_installs_every_generated_crd(kustomize: Kustomize) -> None:
    # crds/ is the one copy; manifests/ reaches the CRDs only through its kustomization.
    installed = {crd["metadata"]["name"] for crd in kustomize.render(CRDS)}
    generated = {crd["metadata"]["name"] for crd in definitions().values()}
    assert generated, "no CRD is generated"
    assert installed == generated, "crds/kustomization.yaml must list every file `make crds` writes"


def test_the_installation_holds_the_committed_crds(installation: list[Document]) -> None:
    # manifests/ references ../crds rather than keeping a copy of its own.
    installed = {
        crd["metadata"]["name"]: crd for crd in of_kind(installation, "CustomResourceDefinition")
    }
    committed = [yaml.safe_load((CRDS / name).read_text()) for name in definitions()]
    assert installed == {crd["metadata"]["name"]: crd for crd in committed}


def _referenced(directory: Path) -> set[Path]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    names = [*kustomization.get("resources", []), *kustomization.get("configurations", [])]
    return {(directory / name).resolve() for name in names}


def test_every_manifest_file_is_reached_by_a_kustomization() -> None:
    # A file no kustomization names is never rendered, dry-run or installed.
    reached = set().union(*(_referenced(directory) for directory in kustomizations()))
    standalone = {INSTALL, SECRETS_EXAMPLE}
    orphans = [
        str(path.relative_to(MANIFESTS))
        for path in MANIFESTS.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path not in standalone and path not in reached
    ]
    assert orphans == []


def _identities(objects: list[Document]) -> set[tuple[str, str, str]]:
    return {
        (item["kind"], item["metadata"].get("namespace", ""), item["metadata"]["name"])
        for item in objects
    }


# What the cluster-wide overlay turns into a ClusterRole and its binding.
OPERATOR_RBAC = {
    ("Role", "conveyor", "conveyor-operator"),
    ("RoleBinding", "conveyor", "conveyor-operator"),
}


@pytest.mark.parametrize(
    "overlay", [KIND, ANOTHER_NAMESPACE, CLUSTER_WIDE], ids=lambda path: path.name
)
def test_every_overlay_renders_everything_the_installation_does(
    installation: list[Document], kustomize: Kustomize, overlay: Path
) -> None:
    # The overlays list the base's folders one by one; a folder added to the base must be
    # added there too.
    expected = _identities(installation)
    if overlay == CLUSTER_WIDE:
        expected -= OPERATOR_RBAC
    assert expected - _identities(kustomize.render(overlay)) == set()


def _conveyor_images(objects: list[Document], repository: str = "conveyor") -> dict[str, str]:
    """Every image of ``repository`` (Conveyor's own by default), by the object and container
    that runs it."""
    found = {}
    for item in objects:
        name = f"{item['kind']}/{item['metadata']['name']}"
        if item["kind"] == "StreamProcessor":
            found[name] = item["spec"]["image"]
            if item["spec"].get("canary"):
                found[f"{name} canary"] = item["spec"]["canary"]["image"]
        elif item["kind"] in ("Deployment", "StatefulSet"):
            for container in item["spec"]["template"]["spec"]["containers"]:
                found[f"{name} {container['name']}"] = container["image"]
    return {key: image for key, image in found.items() if image.split(":")[0] == repository}


def test_every_conveyor_image_of_the_installation_is_the_same(
    installation: list[Document],
) -> None:
    images = _conveyor_images(installation)
    assert len(images) == 2 + len(PROCESSOR_NAMES), images  # operator, edge and processors
    assert len(set(images.values())) == 1, images


def test_on_kind_every_conveyor_image_is_the_locally_built_one(on_kind: list[Document]) -> None:
    images = _conveyor_images(on_kind)
    assert len(images) == 2 + len(PROCESSOR_NAMES), images  # operator, edge and processors
    assert set(images.values()) == {"conveyor:dev"}, images
    # The SMTP sink and the payment sandbox come from the dev stack, which the production
    # image leaves out: the Dockerfile's `sandboxes` target.
    assert _conveyor_images(on_kind, "conveyor-sandboxes") == {
        "Deployment/smtp-sink smtp-sink": "conveyor-sandboxes:dev",
        "Deployment/payment-gateway payment-gateway": "conveyor-sandboxes:dev",
    }


@pytest.mark.parametrize("tree", [MANIFESTS, KIND], ids=["manifests", "overlays/kind"])
def test_processors_replicate_their_changelogs_like_the_topics(
    kustomize: Kustomize, tree: Path
) -> None:
    objects = kustomize.render(tree)
    factors = {topic["spec"]["replicationFactor"] for topic in of_kind(objects, "Topic")}
    assert len(factors) == 1, factors
    for processor in of_kind(objects, "StreamProcessor"):
        env = {variable["name"]: variable["value"] for variable in processor["spec"]["env"]}
        assert env.get("CONVEYOR_REPLICATION_FACTOR") == str(*factors), processor["metadata"]
