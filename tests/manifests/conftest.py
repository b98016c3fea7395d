"""manifests/ as kustomize renders it, with the control plane's own kubectl (kustomize v5).

Rendering needs only the kubectl binary scripts/control-plane builds, not a running cluster.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.devstack.control_plane import REPOSITORY, SCRIPTS

MANIFESTS = REPOSITORY / "manifests"
CRDS = REPOSITORY / "crds"
INSTALL = MANIFESTS / "install.yaml"
SECRETS_EXAMPLE = MANIFESTS / "secrets.example.yaml"
KIND = MANIFESTS / "overlays" / "kind"
CLUSTER_WIDE = MANIFESTS / "overlays" / "cluster-wide"
ANOTHER_NAMESPACE = MANIFESTS / "overlays" / "another-namespace"
# Every render that installs Conveyor whole: the tree and its overlays.
INSTALLATIONS = {
    "manifests": MANIFESTS,
    "overlays/kind": KIND,
    "overlays/cluster-wide": CLUSTER_WIDE,
    "overlays/another-namespace": ANOTHER_NAMESPACE,
}
# What `make manifests` puts above the render.
INSTALL_HEADER = "# Rendered from manifests/ by `make manifests`; do not edit.\n"
NAMESPACE = "conveyor"

Document = dict[str, Any]


def kustomizations() -> list[Path]:
    """Every folder that kustomize can render: manifests/, the root included, and crds/,
    which the tree references."""
    return [*sorted(path.parent for path in MANIFESTS.rglob("kustomization.yaml")), CRDS]


def label(directory: Path) -> str:
    return str(directory.relative_to(REPOSITORY))


def documents(text: str) -> list[Document]:
    return [document for document in yaml.safe_load_all(text) if document]


def of_kind(objects: list[Document], kind: str) -> list[Document]:
    return [document for document in objects if document["kind"] == kind]


@dataclass
class Kustomize:
    kubectl: Path
    _renders: dict[Path, str] = field(default_factory=dict)

    def render_text(self, directory: Path) -> str:
        if directory not in self._renders:
            rendered = subprocess.run(
                [str(self.kubectl), "kustomize", str(directory)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert rendered.returncode == 0, f"kubectl kustomize {directory}:\n{rendered.stderr}"
            self._renders[directory] = rendered.stdout
        return self._renders[directory]

    def render(self, directory: Path) -> list[Document]:
        return documents(self.render_text(directory))


@pytest.fixture(scope="session")
def kustomize() -> Kustomize:
    built = subprocess.run([str(SCRIPTS / "build.sh")], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise RuntimeError(
            f"building kubectl failed; run `make control-plane` to see why:\n{built.stderr[-4000:]}"
        )
    return Kustomize(Path(built.stdout.strip()) / "kubectl")


@pytest.fixture(scope="session")
def installation(kustomize: Kustomize) -> list[Document]:
    """Everything manifests/ installs, as the tree renders it now."""
    return kustomize.render(MANIFESTS)


@pytest.fixture(scope="session")
def on_kind(kustomize: Kustomize) -> list[Document]:
    return kustomize.render(KIND)
