"""The local stack as a whole: bring every service up, report on it, take it down.

Each service is either started here as a local process or, when its URL variable is set
(``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ...), an existing one that is only checked.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from conveyor.devstack import health, kafka_server, postgres_server, processes, redis_server
from conveyor.devstack.certificates import LocalAuthority
from conveyor.devstack.errors import DevStackError, ServiceDidNotStart
from conveyor.devstack.settings import DevStackSettings
from conveyor.infra.database import apply_migrations, create_database_if_missing
from conveyor.infra.settings import KAFKA_SECURITY_FIELDS, ServiceUrls
from conveyor.infra.topic_admin import declared_topics, ensure_topics


@dataclass(frozen=True)
class Service:
    name: str
    url_variable: str
    # PostgreSQL's fast shutdown is SIGINT; its SIGTERM waits for every client to leave.
    stop_signal: int = signal.SIGTERM
    # Its log's name in the logs folder, when the service's own name is a processor's too.
    log_name: str = ""

    @property
    def log_file_name(self) -> str:
        return f"{self.log_name or self.name}.log"


# Started in this order and stopped in the reverse one.
SERVICES = (
    Service("postgres", "DATABASE_URL", stop_signal=signal.SIGINT),
    Service("redis", "REDIS_URL"),
    Service("kafka", "KAFKA_BOOTSTRAP_SERVERS"),
    Service("smtp", "SMTP_URL"),
    # The payments processor writes payments.log.
    Service("payments", "PAYMENT_GATEWAY_URL", log_name="payment-gateway"),
)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | external | not started
    pid: int | None
    url: str
    healthy: bool


class LocalStack:
    """The services of one stack home (``CONVEYOR_DEV_HOME``)."""

    def __init__(
        self,
        settings: DevStackSettings,
        console: Console | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.console = console or Console(stderr=True)
        self.environ = os.environ if environ is None else environ
        self.state = processes.StateFile(settings.state_file)

    # -- addresses -----------------------------------------------------------------------

    def local_url(self, service: str) -> str:
        s = self.settings
        return {
            "postgres": postgres_server.server_dsn(s, s.database_name),
            "redis": f"redis://{s.host}:{s.redis_port}/0",
            "kafka": f"{s.host}:{s.kafka_port}",
            "smtp": f"smtp://{s.host}:{s.smtp_port}",
            # HTTPS and an API key, as a real gateway: the processors meet the same refusals.
            "payments": f"https://{s.host}:{s.payments_port}",
        }[service]

    def is_external(self, service: Service) -> bool:
        return bool(self.environ.get(service.url_variable))

    def url(self, service: Service) -> str:
        return self.environ.get(service.url_variable) or self.local_url(service.name)

    def service_urls(self) -> ServiceUrls:
        by_name = {service.name: self.url(service) for service in SERVICES}
        [payments] = [service for service in SERVICES if service.name == "payments"]
        if self.is_external(payments):
            api_key = self.environ.get("PAYMENT_GATEWAY_API_KEY", "")
            ca_certificates = self.environ.get("PAYMENT_GATEWAY_CA_CERTIFICATES", "")
        else:
            api_key = self.settings.payments_api_key
            # Before the sandbox first starts there is no authority yet, and nothing to trust.
            authority = self.authority.certificate_path
            ca_certificates = authority.read_text() if authority.exists() else ""
        [kafka] = [service for service in SERVICES if service.name == "kafka"]
        return ServiceUrls(
            kafka_bootstrap_servers=by_name["kafka"],
            database_url=by_name["postgres"],
            redis_url=by_name["redis"],
            smtp_url=by_name["smtp"],
            payment_gateway_url=by_name["payments"],
            payment_gateway_api_key=SecretStr(api_key),
            payment_gateway_ca_certificates=ca_certificates,
            **(
                self._external_kafka_security()
                if self.is_external(kafka)
                else self._local_kafka_security()
            ),
        )

    def _external_kafka_security(self) -> dict[str, Any]:
        # Every one given, so none is taken from this process's own environment instead.
        defaults = ServiceUrls.model_fields
        return {
            name: self.environ.get(name.upper(), defaults[name].default)
            for name in KAFKA_SECURITY_FIELDS
        }

    def _local_kafka_security(self) -> dict[str, Any]:
        s = self.settings
        if s.kafka_security == "plaintext":
            return {name: ServiceUrls.model_fields[name].default for name in KAFKA_SECURITY_FIELDS}
        return {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": kafka_server.SASL_MECHANISM,
            "kafka_sasl_username": s.kafka_sasl_username,
            "kafka_sasl_password": SecretStr(s.kafka_sasl_password),
            "kafka_ssl_ca_certificates": kafka_server.certificate(s).authority.read_text(),
        }

    def _healthy(self, service: Service, url: str) -> bool:
        urls = self.service_urls()
        return health.check(
            service.name, url, urls.kafka_security(), urls.payment_gateway_ca_certificates
        )

    @property
    def authority(self) -> LocalAuthority:
        """The stack's own certificate authority, which signs what its services present."""
        return LocalAuthority(self.settings.tls_dir)

    @property
    def maildir(self) -> Path:
        """Where the SMTP sink stores every message it receives."""
        return self.settings.root / "mail"

    # -- up ------------------------------------------------------------------------------

    def up(self) -> ServiceUrls:
        """Start what is not running, wait until all is healthy, provision topics and schema."""
        started_at = time.monotonic()
        with self._lock():
            for service in SERVICES:
                if self.is_external(service):
                    self._require_external(service)
            records = self.state.load()
            waiting: list[Service] = []
            for service in SERVICES:
                if self.is_external(service):
                    continue
                record = records.get(service.name)
                if record is not None and record.is_alive():
                    self.console.print(
                        f"[bold]{service.name}[/]: already running (pid {record.pid})"
                    )
                else:
                    records[service.name] = self._start(service)
                    self.state.save(records)
                waiting.append(service)
            for service in waiting:
                self._wait_until_healthy(service, records[service.name])
            self._provision()
            self._write_env_file()
        self.console.print(f"stack ready in {time.monotonic() - started_at:.1f} s")
        return self.service_urls()

    def _start(self, service: Service) -> processes.ProcessRecord:
        log_file = self.settings.logs_dir / service.log_file_name
        user: str | None = None
        s = self.settings
        if service.name == "kafka":
            command = kafka_server.prepare(s, self.console)
        elif service.name == "postgres":
            command, user = postgres_server.prepare(s, self.console)
        elif service.name == "redis":
            command = redis_server.prepare(s)
        elif service.name == "smtp":
            command = [
                sys.executable,
                "-m",
                "conveyor.devstack.smtp_sink",
                "--host",
                s.host,
                "--port",
                str(s.smtp_port),
                "--maildir",
                str(self.maildir),
            ]
        else:
            served = self.authority.server("payment-gateway", [s.host, "localhost"])
            command = [
                sys.executable,
                "-m",
                "conveyor.devstack.payment_sandbox",
                "--host",
                s.host,
                "--port",
                str(s.payments_port),
                "--timeout-delay",
                str(s.payment_timeout_delay_seconds),
                "--api-key",
                s.payments_api_key,
                "--certificate",
                str(served.chain),
                "--private-key",
                str(served.key),
            ]
        self.console.print(f"[bold]{service.name}[/]: starting on {self.local_url(service.name)}")
        return processes.spawn(service.name, command, log_file, cwd=s.root, user=user)

    def _wait_until_healthy(self, service: Service, record: processes.ProcessRecord) -> None:
        url = self._health_url(service)
        began = time.monotonic()

        def healthy_or_dead() -> bool:
            return not record.is_alive() or self._healthy(service, url)

        processes.wait_until(healthy_or_dead, self.settings.start_timeout_seconds)
        if record.is_alive() and self._healthy(service, url):
            self.console.print(
                f"[bold]{service.name}[/]: [green]healthy[/] in {time.monotonic() - began:.1f} s"
            )
            return
        what = (
            "exited"
            if not record.is_alive()
            else (f"did not become healthy within {self.settings.start_timeout_seconds:.0f} s")
        )
        # Neither left half-started nor, when it exited, unreaped.
        processes.stop(record, grace_seconds=10)
        raise ServiceDidNotStart(
            f"{service.name} {what}. Last lines of {record.log_file}:\n"
            f"{processes.log_tail(Path(record.log_file))}\n"
            f"Fix the cause above, then run `conveyor dev up` again "
            f"(`conveyor dev down --purge` starts from empty data)."
        )

    def _health_url(self, service: Service) -> str:
        if service.name == "postgres" and not self.is_external(service):
            # The application database may not exist yet; the server's own one always does.
            return postgres_server.server_dsn(self.settings)
        return self.url(service)

    def _require_external(self, service: Service) -> None:
        url = self.url(service)
        if not self._healthy(service, url):
            raise DevStackError(
                f"{service.url_variable} is set, but nothing healthy answers there ({url}). "
                f"Start that service, or unset {service.url_variable} to run a local one."
            )
        self.console.print(f"[bold]{service.name}[/]: using existing {service.url_variable}")

    def _provision(self) -> None:
        urls = self.service_urls()
        postgres = SERVICES[0]
        if not self.is_external(postgres):
            asyncio.run(
                create_database_if_missing(
                    postgres_server.server_dsn(self.settings), self.settings.database_name
                )
            )
        applied = asyncio.run(apply_migrations(urls.database_url))
        self.console.print(
            f"[bold]postgres[/]: schema up to date ({len(applied)} migrations applied now)"
        )
        # Locally the stack owns the topics: made from the declarations the Topic resources
        # of a cluster are made from.
        created = asyncio.run(
            ensure_topics(
                urls.kafka_bootstrap_servers, declared_topics(), security=urls.kafka_security()
            )
        )
        self.console.print(f"[bold]kafka[/]: topics ready ({len(created)} created or grown now)")

    def _write_env_file(self) -> None:
        lines = [
            "# Written by `conveyor dev up`: the addresses of the local stack.",
            # PEM spans lines; quoted, a shell reads it whole (and PEM holds no quote).
            *(
                f"{name}='{value}'" if "\n" in value else f"{name}={value}"
                for name, value in self.service_urls().environment().items()
            ),
            f"CONVEYOR_DEV_MAILDIR={self.maildir}",
            "",
        ]
        self.settings.env_file.write_text("\n".join(lines))

    # -- status and down -----------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        records = self.state.load()
        report = []
        for service in SERVICES:
            url = self.url(service)
            if self.is_external(service):
                report.append(
                    ServiceStatus(service.name, "external", None, url, self._healthy(service, url))
                )
                continue
            record = records.get(service.name)
            if record is None:
                report.append(ServiceStatus(service.name, "not started", None, url, False))
            elif record.is_alive():
                report.append(
                    ServiceStatus(
                        service.name,
                        "running",
                        record.pid,
                        url,
                        self._healthy(service, self._health_url(service)),
                    )
                )
            else:
                report.append(ServiceStatus(service.name, "stopped", record.pid, url, False))
        return report

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process this stack started, and nothing else; returns their names."""
        stopped = []
        with self._lock():
            records = self.state.load()
            for service in reversed(SERVICES):
                record = records.pop(service.name, None)
                if record is None:
                    continue
                if record.is_alive():
                    self.console.print(f"[bold]{service.name}[/]: stopping (pid {record.pid})")
                    processes.stop(record, service.stop_signal)
                    stopped.append(service.name)
                self.state.save(records)
        if purge:
            shutil.rmtree(self.settings.root, ignore_errors=True)
            self.console.print(f"removed {self.settings.root}")
        return stopped

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up` or `down` at a time per stack home, even from two terminals."""
        self.settings.root.mkdir(parents=True, exist_ok=True)
        with (self.settings.root / ".lock").open("w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
