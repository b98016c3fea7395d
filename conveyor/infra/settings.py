"""Where the outside services are: one URL each, from the environment.

Every component reads the same five variables, so a deployment points Conveyor at existing
Kafka, PostgreSQL, Redis, SMTP and payment gateway by setting them, and the gateway's API key
beside its URL. The defaults are the addresses the local stack (``conveyor dev up``) listens on.
"""

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_URL_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "PAYMENT_GATEWAY_URL",
    "PAYMENT_GATEWAY_API_KEY",
)


class ServiceUrls(BaseSettings):
    """The outside services a component talks to."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    database_url: str = "postgresql://postgres@127.0.0.1:15432/conveyor"
    redis_url: str = "redis://127.0.0.1:16379/0"
    smtp_url: str = "smtp://127.0.0.1:11025"
    payment_gateway_url: str = "http://127.0.0.1:18080"
    # Sent as `Authorization: Bearer <key>` with every gateway request; empty: none sent.
    payment_gateway_api_key: SecretStr = SecretStr("")

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables a component reads them from."""
        return {
            name.upper(): value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            for name, value in self.model_dump().items()
        }


@lru_cache
def get_service_urls() -> ServiceUrls:
    return ServiceUrls()


class RetentionSettings(BaseSettings):
    """How long the bookkeeping of finished orders is kept, for every component alike.

    The processors keep finished sagas, sold and released holds and dedupe entries this
    long after their last change, and refuse a record older than this (the entries that
    would recognize it as a redelivery may be gone). The edge lets a confirmed order be
    cancelled only within this long of its confirmation, while its saga still exists.
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore", frozen=True)

    state_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
