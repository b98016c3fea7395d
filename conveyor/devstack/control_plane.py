"""A real Kubernetes control plane as local processes, for the operator's tests and benchmark.

``scripts/control-plane/build.sh`` builds kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl, etcd and kwok from their Go modules once (cached outside the clone);
``start.sh`` starts them on loopback with one fake kwok node. This module runs both and hands
back the kubeconfig and a kubectl of the same version.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conveyor.devstack.errors import PrerequisiteMissing, ServiceDidNotStart

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPTS = REPOSITORY / "scripts" / "control-plane"


class KubectlFailed(ServiceDidNotStart):
    """kubectl against the local control plane exited non-zero; the message has its output."""


@dataclass(frozen=True)
class ControlPlane:
    directory: Path
    kubeconfig: Path
    bin: Path

    @property
    def kubectl_path(self) -> Path:
        return self.bin / "kubectl"

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs this control plane's kubectl; a failure carries kubectl's own words."""
        completed = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and completed.returncode != 0:
            raise KubectlFailed(
                f"kubectl {' '.join(args)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed

    def stop(self) -> None:
        subprocess.run([str(self.directory / "stop.sh")], check=False, timeout=120)


def start_control_plane(directory: Path) -> ControlPlane:
    """Builds the binaries when they are missing (minutes, once), then starts them (seconds)."""
    if not SCRIPTS.is_dir():
        raise PrerequisiteMissing(
            f"{SCRIPTS} not found: the control plane runs from a clone of the repository"
        )
    built = subprocess.run([str(SCRIPTS / "build.sh")], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise PrerequisiteMissing(
            "building the control plane failed; run `make control-plane` to see why:\n"
            f"{built.stderr[-4000:]}"
        )
    started = subprocess.run(
        [str(SCRIPTS / "start.sh"), str(directory)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise ServiceDidNotStart(
            f"the control plane did not start (logs in {directory}):\n{started.stderr[-4000:]}"
        )
    return ControlPlane(directory, directory / "kubeconfig", Path(built.stdout.strip()))
