"""Conveyor's own processes on top of the local stack: the stream processors of the
catalogue, the edge, and the Prometheus that watches them.

``make run`` starts them after the services, as ``conveyor worker <name>`` and ``conveyor
api`` processes pointed at the stack's addresses, each processor with its metrics on its own
port, and ``prometheus`` scraping the edge and every processor with the project's rules. They
are recorded in a state file of their own, so ``conveyor dev down`` stops them first and
nothing else.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conveyor.devstack import processes, prometheus_server
from conveyor.devstack.errors import ServiceDidNotStart
from conveyor.devstack.launched import answers_ok
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack, ServiceStatus
from conveyor.domain.processors import CATALOGUE, PROCESSOR_NAMES, processor_spec

EDGE = "api"
PROMETHEUS = "prometheus"
# The processors start first, in the catalogue's order.
COMPONENTS = (*PROCESSOR_NAMES, EDGE, PROMETHEUS)
DEV_ADMIN_EMAIL = "admin@conveyor.example"


def _new_signing_key_pem() -> str:
    """An Ed25519 key for the edge's access tokens, from the command operators use too (the
    dev stack never imports the edge's code)."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "new-signing-key"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@dataclass(frozen=True)
class Component:
    name: str
    command: tuple[str, ...]
    port: int
    # Answers 200 once the component serves.
    health_path: str
    settings: dict[str, str]


def metrics_port(settings: DevStackSettings, processor: str) -> int:
    """Where a processor of the local stack serves its metrics."""
    return settings.metrics_base_port + processor_spec(processor).metrics_port_offset


class Components:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.state = processes.StateFile(stack.settings.root / "components.json")

    def declared(self) -> list[Component]:
        settings = self.stack.settings
        processors = [
            Component(
                spec.name,
                (sys.executable, "-m", "conveyor", "worker", spec.name),
                port=metrics_port(settings, spec.name),
                health_path="/metrics",
                settings={
                    "CONVEYOR_DATA_DIR": str(settings.root / "workers"),
                    "CONVEYOR_METRICS_HOST": settings.host,
                    "CONVEYOR_METRICS_PORT": str(metrics_port(settings, spec.name)),
                },
            )
            for spec in CATALOGUE
        ]
        edge = Component(
            EDGE,
            (sys.executable, "-m", "conveyor", "api"),
            port=settings.api_port,
            health_path="/healthz",
            settings={
                "CONVEYOR_API_HOST": settings.host,
                "CONVEYOR_API_PORT": str(settings.api_port),
                "CONVEYOR_DEV_STACK": "true",
                "CONVEYOR_JWT_SIGNING_KEYS": self._kept_secret(
                    "jwt-signing-key.pem", _new_signing_key_pem
                ),
                "CONVEYOR_ADMIN_EMAIL": DEV_ADMIN_EMAIL,
                "CONVEYOR_ADMIN_PASSWORD": self._kept_secret(
                    "admin-password", lambda: secrets.token_urlsafe(32)
                ),
                # Trying the shop locally should not need a trip to the mail sink before the
                # first order; the orders of unverified accounts still send no e-mail.
                "CONVEYOR_REQUIRE_VERIFIED_EMAIL": "false",
                # Account e-mails link to the shop this edge serves.
                "CONVEYOR_PUBLIC_URL": f"http://{settings.host}:{settings.api_port}",
            },
        )
        monitor = Component(
            PROMETHEUS,
            tuple(prometheus_server.local_command(settings)),
            port=settings.prometheus_port,
            health_path="/-/ready",
            settings={},
        )
        return [*processors, edge, monitor]

    def scrape_targets(self) -> list[prometheus_server.ScrapeTarget]:
        """The edge and every processor, labelled as the rules and dashboards expect."""
        host = self.stack.settings.host
        targets = []
        for component in self.declared():
            if component.name in PROCESSOR_NAMES:
                targets.append(
                    prometheus_server.ScrapeTarget(
                        prometheus_server.PROCESSOR_JOB,
                        f"{host}:{component.port}",
                        {"processor": component.name},
                    )
                )
            elif component.name == EDGE:
                targets.append(
                    prometheus_server.ScrapeTarget(
                        prometheus_server.EDGE_JOB, f"{host}:{component.port}"
                    )
                )
        return targets

    def _kept_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret made once per stack home, so tokens survive restarts of the edge."""
        path = self.stack.settings.root / name
        if not path.exists():
            made = make()  # first, so a failure leaves no empty secret behind
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(0o600)  # never readable by others, not even for a moment
            path.write_text(made)
        return path.read_text().strip()

    def health_url(self, component: Component) -> str:
        return f"http://{self.stack.settings.host}:{component.port}{component.health_path}"

    def edge_url(self) -> str:
        return f"http://{self.stack.settings.host}:{self.stack.settings.api_port}"

    def prometheus_url(self) -> str:
        return f"http://{self.stack.settings.host}:{self.stack.settings.prometheus_port}"

    def up(self, extra_env: dict[str, str] | None = None) -> None:
        """Start every component not running yet and wait until each serves.

        ``extra_env`` adds settings (``CONVEYOR_*``) to their environment.
        """
        urls = self.stack.service_urls()
        settings = self.stack.settings
        records = self.state.load()
        # Before anything starts, so a missing binary stops `dev up` with what to install.
        prometheus_server.prepare(settings, self.scrape_targets())
        for component in self.declared():
            record = records.get(component.name)
            if record is not None and record.is_alive():
                self.stack.console.print(
                    f"[bold]{component.name}[/]: already running (pid {record.pid})"
                )
                continue
            env = {
                **urls.environment(),
                **component.settings,
                **(extra_env or {}),
            }
            self.stack.console.print(
                f"[bold]{component.name}[/]: starting, serving {self.health_url(component)}"
            )
            records[component.name] = processes.spawn(
                component.name,
                list(component.command),
                settings.logs_dir / f"{component.name}.log",
                cwd=settings.root,
                env=env,
            )
            self.state.save(records)
        for component in self.declared():
            self._wait_until_serving(component, records[component.name])

    def _wait_until_serving(self, component: Component, record: processes.ProcessRecord) -> None:
        began = time.monotonic()
        url = self.health_url(component)
        settings = self.stack.settings
        if (
            not processes.wait_until(
                lambda: answers_ok(url) or not record.is_alive(),
                settings.start_timeout_seconds,
            )
            or not record.is_alive()
        ):
            raise ServiceDidNotStart(
                f"{component.name} did not come up (pid {record.pid}); the end of "
                f"{record.log_file}:\n{processes.log_tail(Path(record.log_file))}"
            )
        self.stack.console.print(
            f"[bold]{component.name}[/]: running in {time.monotonic() - began:.1f} s"
        )

    def status(self) -> list[ServiceStatus]:
        records = self.state.load()
        report = []
        for component in self.declared():
            record = records.get(component.name)
            url = self.health_url(component)
            if record is None:
                report.append(ServiceStatus(component.name, "not started", None, url, False))
            elif record.is_alive():
                report.append(
                    ServiceStatus(component.name, "running", record.pid, url, answers_ok(url))
                )
            else:
                report.append(ServiceStatus(component.name, "stopped", record.pid, url, False))
        return report

    def down(self) -> list[str]:
        records = self.state.load()
        stopping = {}
        for component in reversed(self.declared()):
            record = records.pop(component.name, None)
            if record is not None and record.is_alive():
                self.stack.console.print(f"[bold]{component.name}[/]: stopping (pid {record.pid})")
                stopping[component.name] = record
        # The components depend on the services, not on each other: asked to stop all at
        # once, they take as long as the slowest (a processor's clean leave of its group)
        # rather than the sum.
        with ThreadPoolExecutor(max_workers=max(1, len(stopping))) as pool:
            list(pool.map(lambda record: processes.stop(record, signal.SIGTERM), stopping.values()))
        self.state.save(records)
        return list(stopping)
