"""How the operator runs; each field comes from ``CONVEYOR_OPERATOR_<FIELD>``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_OPERATOR_", extra="ignore", frozen=True)

    namespaces: str = Field(
        default="", description="Comma-separated namespaces to watch; empty watches them all."
    )
    # In a pod the probes and Prometheus come from outside the pod's network namespace.
    metrics_host: str = "0.0.0.0"  # noqa: S104
    metrics_port: int = Field(default=9100, ge=0, le=65535)
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    # A full reconcile of every StreamProcessor this often, even without events: lag is read,
    # autoscaling decided and status refreshed on this beat.
    resync_seconds: float = Field(default=15.0, gt=0)
    # Kafka has no watch API: drift made directly in Kafka is found by looking this often.
    topic_resync_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"

    @property
    def namespace_list(self) -> list[str]:
        return [name.strip() for name in self.namespaces.split(",") if name.strip()]


@lru_cache
def get_operator_settings() -> OperatorSettings:
    return OperatorSettings()
