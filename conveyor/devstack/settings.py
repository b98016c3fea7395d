"""Where the local stack keeps its data and which loopback ports it listens on."""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.domain.processors import CATALOGUE


def _source_rules_dir() -> Path:
    # The clone's own rules; an installed wheel has none, and Prometheus then runs without.
    return Path(__file__).resolve().parents[2] / "dashboards" / "rules"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conveyor"


# Listening ports are drawn below the kernel's ephemeral range: a port from that range can be
# taken by any outgoing connection between the moment it is chosen and the moment a service
# binds it, which is how two processes of one test session once met on the same port.
_LISTEN_RANGE = (20000, 32000)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ports handed out lately, by any process on the machine. A port free when chosen is bound
# only later (once its service starts), and two processes drawing at once (the test
# session's workers, a session right after another) could both draw it: a port handed out
# here is not handed out again for PORT_CLAIM_SECONDS.
PORT_CLAIMS = Path(tempfile.gettempdir()) / "conveyor-port-claims"
PORT_CLAIM_SECONDS = 900.0


def _claim(run: range, claims: Path = PORT_CLAIMS) -> bool:
    """Claim every port of ``run`` unless another process claimed one of them lately."""
    now = time.time()
    with claims.open("a+") as ledger:
        fcntl.flock(ledger, fcntl.LOCK_EX)
        ledger.seek(0)
        recent: dict[int, float] = {}
        for line in ledger.read().splitlines():
            port, _, at = line.partition(" ")
            try:
                if now - float(at) < PORT_CLAIM_SECONDS:
                    recent[int(port)] = float(at)
            except ValueError:
                continue
        if any(port in recent for port in run):
            return False
        recent.update(dict.fromkeys(run, now))
        ledger.seek(0)
        ledger.truncate()
        ledger.write("".join(f"{port} {at}\n" for port, at in recent.items()))
    return True


def free_port_run(count: int, attempts: int = 200) -> int:
    """The first of ``count`` consecutive loopback ports that are all free now, outside the
    ephemeral range."""
    low, high = _LISTEN_RANGE
    ephemeral_low, ephemeral_high = _ephemeral_range()
    for _ in range(attempts):
        first = secrets.randbelow(high - low - count) + low
        run = range(first, first + count)
        if any(ephemeral_low <= port <= ephemeral_high for port in run):
            continue
        if all(_bindable(port) for port in run) and _claim(run):
            return first
    raise RuntimeError(f"found no {count} consecutive free ports in {attempts} attempts")


def free_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on now, outside the ephemeral range, all different."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port_run(1)
        if port not in chosen:
            chosen.append(port)
    return chosen


class DevStackSettings(BaseSettings):
    """Settings of ``conveyor dev``; each can be set as ``CONVEYOR_DEV_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_DEV_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".conveyor/dev"),
        description="Project-local directory holding every service's data, logs and state.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloads shared by every clone (Kafka's jars), so a second run is fast.",
    )
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
    redis_port: int = 16379
    smtp_port: int = 11025
    payments_port: int = 18080
    # The processors' /metrics ports: this one plus each processor's offset in the catalogue.
    metrics_base_port: int = 19101
    # The REST edge (`conveyor api`).
    api_port: int = 18000
    # Prometheus, scraping the edge and the processors with the project's rules loaded.
    prometheus_port: int = 19090
    prometheus_scrape_interval: str = "5s"
    prometheus_rules_dir: Path = Field(default_factory=_source_rules_dir)
    database_name: str = "conveyor"
    start_timeout_seconds: float = 90.0
    payment_timeout_delay_seconds: float = 30.0
    # The local payment sandbox's API key, which the stack also gives the processors.
    payments_api_key: str = "sk_sandbox_conveyor_dev"
    # plaintext, or scram-tls: Kafka's client listener then speaks SASL_SSL, with a
    # certificate of the stack's own authority and SCRAM-SHA-512 logins, as a deployment's
    # brokers do. Chosen when Kafka's storage is first formatted (the login is made then).
    kafka_security: Literal["plaintext", "scram-tls"] = "plaintext"
    kafka_sasl_username: str = "conveyor"
    kafka_sasl_password: str = "conveyor-dev-kafka-password"

    @classmethod
    def isolated(cls, home: Path, **overrides: Any) -> DevStackSettings:
        """Settings for a stack of its own beside any other: a private home, free ports.

        Tests and benchmarks use it so they never touch the stack `make run` started.
        """
        kafka, controller, postgres, redis, smtp, payments, api, prometheus = free_ports(8)
        fields: dict[str, Any] = {
            "api_port": api,
            "prometheus_port": prometheus,
            "metrics_base_port": free_port_run(
                1 + max(spec.metrics_port_offset for spec in CATALOGUE)
            ),
            "home": home,
            "kafka_port": kafka,
            "kafka_controller_port": controller,
            "postgres_port": postgres,
            "redis_port": redis,
            "smtp_port": smtp,
            "payments_port": payments,
        }
        # Through __init__, so the environment still provides what is not given here.
        return cls(**{**fields, **overrides})

    @property
    def root(self) -> Path:
        return self.home.resolve()

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def tls_dir(self) -> Path:
        """The stack's certificate authority and the certificates it signed."""
        return self.root / "tls"

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"
