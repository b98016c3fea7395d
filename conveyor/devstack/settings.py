"""Where the local stack keeps its data and which loopback ports it listens on."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conveyor"


def free_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on now, chosen by the kernel."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_run(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports that are all free now."""
    for _ in range(attempts):
        [first] = free_ports(1)
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                bound = socket.socket()
                sockets.append(bound)
                bound.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for bound in sockets:
                bound.close()
    raise RuntimeError(f"found no {count} consecutive free ports in {attempts} attempts")


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
    # The processors' /metrics ports: this one and the next four.
    metrics_base_port: int = 19101
    # The REST edge (`conveyor api`).
    api_port: int = 18000
    database_name: str = "conveyor"
    start_timeout_seconds: float = 90.0
    payment_timeout_delay_seconds: float = 30.0

    @classmethod
    def isolated(cls, home: Path, **overrides: Any) -> DevStackSettings:
        """Settings for a stack of its own beside any other: a private home, free ports.

        Tests and benchmarks use it so they never touch the stack `make run` started.
        """
        kafka, controller, postgres, redis, smtp, payments, api = free_ports(7)
        fields: dict[str, Any] = {
            "api_port": api,
            "metrics_base_port": free_port_run(5),
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
    def env_file(self) -> Path:
        return self.root / "stack.env"
