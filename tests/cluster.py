"""A real Kubernetes control plane for the tests: scripts/control-plane started once per session.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (one fake Node that
turns scheduled pods Running) run as local processes; the binaries are built from their Go
modules once and cached outside the clone (``make control-plane``).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts" / "control-plane"


@dataclass(frozen=True)
class Cluster:
    directory: Path
    kubeconfig: Path
    bin: Path

    @property
    def kubectl_path(self) -> Path:
        return self.bin / "kubectl"

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs this cluster's kubectl; a failure shows kubectl's own words."""
        completed = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed

    def stop(self) -> None:
        subprocess.run([str(self.directory / "stop.sh")], check=False, timeout=120)


def start_cluster(directory: Path) -> Cluster:
    """Builds the binaries when they are missing (minutes, once), then starts them (seconds)."""
    built = subprocess.run([str(SCRIPTS / "build.sh")], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise RuntimeError(
            f"building the control plane failed; run `make control-plane` to see why:\n"
            f"{built.stderr[-4000:]}"
        )
    started = subprocess.run(
        [str(SCRIPTS / "start.sh"), str(directory)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    if started.returncode != 0:
        raise RuntimeError(
            f"the control plane did not start (logs in {directory}):\n{started.stderr[-4000:]}"
        )
    return Cluster(directory, directory / "kubeconfig", Path(built.stdout.strip()))
