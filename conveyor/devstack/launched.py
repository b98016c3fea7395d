"""One process started for a test or a benchmark: its output in a log, ready once a URL answers.

The edge, the operator and Prometheus are each started this way by the tests and the
benchmarks; the stack's own long-lived services go through ``processes.spawn`` instead, since
they outlive the command that starts them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conveyor.devstack.errors import ServiceDidNotStart


def terminate(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace_seconds``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Launched:
    name: str
    command: Sequence[str]
    log_path: Path
    environment: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, ready_url: str, timeout: float = 60.0) -> None:
        """Starts the command and returns once ``ready_url`` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if self.environment is None else dict(self.environment),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceDidNotStart(f"{self.name} exited:\n{self.log()}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise ServiceDidNotStart(f"{self.name} did not serve within {timeout} s:\n{self.log()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self, grace_seconds: float = 20) -> None:
        if self.process is not None:
            terminate(self.process, grace_seconds)

    def log(self, characters: int = 6000) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-characters:]
