"""The five processors as real worker processes (``conveyor worker <name>``) for the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.launched import terminate
from conveyor.devstack.settings import free_ports
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.infra.settings import ServiceUrls

READY_LINE = "[^Worker]: Ready"


@dataclass
class Worker:
    name: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    def log_tail(self, characters: int = 4000) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-characters:]


@dataclass
class Workers:
    """Starts, kills and restarts the processors against one stack."""

    urls: ServiceUrls
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    runs: int = 0

    def environment(self, name: str) -> dict[str, str]:
        [metrics_port] = free_ports(1)
        env = {
            **os.environ,
            **self.urls.environment(),
            "CONVEYOR_DATA_DIR": str(self.root / "data"),
            "CONVEYOR_METRICS_PORT": str(metrics_port),
            "CONVEYOR_LAG_INTERVAL_SECONDS": "2",
            # Several tests take the gateway down on purpose; the breaker's own behaviour is
            # tested on its own, so here it must not spill one test's failures into another.
            "CONVEYOR_CIRCUIT_FAILURE_THRESHOLD": "1000",
        }
        env.update(self.extra_env)
        return env

    def start(self, *names: str) -> None:
        for name in names or PROCESSOR_NAMES:
            self.runs += 1
            log_path = self.root / f"{name}-{self.runs}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            env = self.environment(name)
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "conveyor", "worker", name],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            self.workers[name] = Worker(name, log_path, process, int(env["CONVEYOR_METRICS_PORT"]))
        self.wait_ready(*(names or PROCESSOR_NAMES))

    def start_with(self, name: str, env: dict[str, str]) -> None:
        """Start ``name`` with ``env`` added to its environment, for this start only."""
        saved = dict(self.extra_env)
        self.extra_env.update(env)
        try:
            self.start(name)
        finally:
            self.extra_env.clear()
            self.extra_env.update(saved)

    @contextlib.contextmanager
    def restarted_with(self, env: dict[str, str]) -> Iterator[Workers]:
        """Every processor restarted with ``env`` added for the block, then as before."""
        saved = dict(self.extra_env)
        self.stop_all()
        self.extra_env.update(env)
        try:
            self.start()
            yield self
        finally:
            self.stop_all()
            self.extra_env.clear()
            self.extra_env.update(saved)
            self.start()

    def wait_ready(self, *names: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                worker = self.workers[name]
                assert worker.process is not None
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {name} exited:\n{worker.log_tail()}")
                if READY_LINE in worker.log_path.read_text(errors="replace"):
                    pending.discard(name)
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.workers[n].log_tail()}" for n in pending)
                raise RuntimeError(f"workers not ready after {timeout} s:\n{tails}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no final commit, nothing flushed."""
        worker = self.workers[name]
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()

    def stop(self, name: str) -> None:
        """SIGTERM: a clean leave of the consumer group, offsets committed."""
        worker = self.workers[name]
        assert worker.process is not None
        terminate(worker.process, grace_seconds=60)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers.values():
            if worker.process is None:
                continue
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    def samples(self, name: str, metric: str) -> list[tuple[dict[str, str], float]]:
        """The samples of one metric on a worker's /metrics, each with its labels."""
        port = self.workers[name].metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return [
            (sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == metric
        ]

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in self.workers.values())
