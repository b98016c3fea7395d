"""One process started for a test or a benchmark: its output in a log, ready once a URL answers
or once it logs a line.

The edge, the operator, the stream processors and Prometheus are each started this way by the
tests and the benchmarks; the stack's own long-lived services go through ``processes.spawn``
instead, since they outlive the command that starts them.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.devstack.errors import ServiceDidNotStart


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


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
    _log_start: int = field(default=0, init=False)
    _stop_asked: bool = field(default=False, init=False)

    def start(self, ready_url: str, timeout: float = 60.0) -> None:
        """Starts the command and returns once ``ready_url`` answers 200."""
        self.launch()
        self.wait_ready(lambda: answers_ok(ready_url, timeout=1), f"serve {ready_url}", timeout)

    def launch(self) -> None:
        """Starts the command without waiting; ``wait_ready`` or ``wait_logged`` then wait.

        Launching several first and then waiting for each lets them start side by side.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Where this run's output begins, so a line an earlier run logged is not taken
        # for this run's.
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._stop_asked = False
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if self.environment is None else dict(self.environment),
            )

    def wait_ready(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Returns once ``ready()`` holds; raises if the process exits or ``timeout`` passes."""
        assert self.process is not None, f"{self.name} was never launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceDidNotStart(f"{self.name} exited:\n{self.log()}")
            if ready():
                return
            time.sleep(0.2)
        raise ServiceDidNotStart(f"{self.name} did not {what} within {timeout} s:\n{self.log()}")

    def wait_logged(self, line: str, timeout: float = 60.0) -> None:
        """Returns once this run of the process has logged ``line``."""
        self.wait_ready(lambda: line in self.output(), f"log {line!r}", timeout)

    def output(self) -> str:
        """What this run of the process has logged so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def ask_to_stop(self) -> None:
        """SIGTERM without waiting, so several processes shut down side by side (then
        ``stop`` waits for each without signalling it again)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            self._stop_asked = True

    def stop(self, grace_seconds: float = 20) -> None:
        """SIGTERM (unless ``ask_to_stop`` sent it), then SIGKILL after ``grace_seconds``."""
        if self.process is None:
            return
        if self._stop_asked:
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        else:
            terminate(self.process, grace_seconds)

    def log(self, characters: int = 6000) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-characters:]
