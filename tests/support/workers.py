"""The processors of the catalogue as real worker processes (``conveyor worker <name>``) for
the tests, each started through ``conveyor.devstack.launched`` like every other process the
tests run."""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.infra.settings import ServiceUrls

# What a Faust worker logs once it has joined its group and serves its partitions.
READY_LINE = "[^Worker]: Ready"
READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 30.0


@dataclass
class Worker:
    name: str
    launched: Launched
    metrics_port: int

    def log_tail(self, characters: int = 4000) -> str:
        return self.launched.log(characters)


@dataclass
class Workers:
    """Starts, kills and restarts the processors against one stack."""

    urls: ServiceUrls
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    runs: int = 0

    def environment(self, metrics_port: int) -> dict[str, str]:
        return {
            **os.environ,
            **self.urls.environment(),
            "CONVEYOR_DATA_DIR": str(self.root / "data"),
            "CONVEYOR_METRICS_PORT": str(metrics_port),
            "CONVEYOR_LAG_INTERVAL_SECONDS": "2",
            # Several tests take the gateway down on purpose; the breaker's own behaviour is
            # tested on its own, so here it must not spill one test's failures into another.
            "CONVEYOR_CIRCUIT_FAILURE_THRESHOLD": "1000",
            **self.extra_env,
        }

    def start(self, *names: str) -> None:
        """Start ``names`` (default: all of them) side by side, and return once each is ready."""
        names = names or PROCESSOR_NAMES
        for name in names:
            self._launch(name, name, {})
        self.wait_ready(*names)

    def launch_replicas(
        self, name: str, *ordinals: int, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """Replicas of ``name`` as a StatefulSet's pods are, launched without waiting (with
        ``env`` added): each has its pod's name (``orders-0``, ``orders-1``, ...) as its
        static group membership and a data directory of its own, and is known here by that
        name."""
        replicas = [f"{name}-{ordinal}" for ordinal in ordinals]
        for replica in replicas:
            data_dir = self.root / "replicas" / replica
            own = {"CONVEYOR_GROUP_INSTANCE_ID": replica, "CONVEYOR_DATA_DIR": str(data_dir)}
            self._launch(replica, name, {**(env or {}), **own})
        return replicas

    def wait_ready(self, *names: str) -> None:
        """Return once each of ``names`` (processors, or replicas) has logged it is ready."""
        for name in names:
            self.workers[name].launched.wait_logged(READY_LINE, READY_TIMEOUT_SECONDS)

    def _launch(self, known_as: str, processor: str, env: dict[str, str]) -> None:
        self.runs += 1
        [metrics_port] = free_ports(1)
        launched = Launched(
            f"worker {known_as} (run {self.runs})",
            [sys.executable, "-m", "conveyor", "worker", processor],
            self.root / f"{known_as}-{self.runs}.log",
            {**self.environment(metrics_port), **env},
        )
        launched.launch()
        self.workers[known_as] = Worker(processor, launched, metrics_port)

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
    def restarted_with(self, env: dict[str, str], *names: str) -> Iterator[Workers]:
        """``names`` (default: every processor) restarted with ``env`` added for the block,
        then as before. Naming only the processors a setting is for spares the others two
        restarts, the costliest part of such a module."""
        names = names or PROCESSOR_NAMES
        saved = dict(self.extra_env)
        self._stop(names)
        self.extra_env.update(env)
        try:
            self.start(*names)
            yield self
        finally:
            self._stop(names)
            self.extra_env.clear()
            self.extra_env.update(saved)
            self.start(*names)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no final commit, nothing flushed."""
        self.workers[name].launched.kill()

    def stop(self, name: str) -> None:
        """SIGTERM: a clean leave of the consumer group, offsets committed."""
        self.workers[name].launched.stop(grace_seconds=60)

    def stop_side_by_side(self, *names: str) -> None:
        """SIGTERM to each of ``names`` at once, then each is waited for."""
        self._stop(names)

    def stop_all(self) -> None:
        """SIGTERM to every processor at once, then each is waited for (killed if it hangs)."""
        self._stop(tuple(self.workers))

    def _stop(self, names: tuple[str, ...]) -> None:
        stopping = [self.workers[name] for name in names if name in self.workers]
        for worker in stopping:
            worker.launched.ask_to_stop()
        for worker in stopping:
            worker.launched.stop(grace_seconds=STOP_GRACE_SECONDS)

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
        return "\n".join(f"--- {name}\n{w.log_tail()}" for name, w in self.workers.items())
