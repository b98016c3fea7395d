"""Where the outside services are: one URL each, from the environment.

Every component reads the same five variables, so a deployment points Conveyor at existing
Kafka, PostgreSQL, Redis, SMTP and payment gateway by setting them, and the gateway's API key
and the authority its certificate is checked against beside its URL. The defaults are the
addresses the local stack (``conveyor dev up``) listens on.
"""

import ipaddress
import ssl
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.infra.errors import SettingRefused

SERVICE_URL_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "PAYMENT_GATEWAY_URL",
    "PAYMENT_GATEWAY_API_KEY",
    "PAYMENT_GATEWAY_CA_CERTIFICATES",
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
    # PEM certificates of the authorities the gateway's certificate is checked against, for a
    # gateway behind a private CA; empty: the system's authorities. The PEM itself rather than
    # a file, so a Kubernetes Secret key can hold it.
    payment_gateway_ca_certificates: str = ""

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables a component reads them from."""
        return {
            name.upper(): value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            for name, value in self.model_dump().items()
        }

    def payment_gateway_tls(self) -> ssl.SSLContext:
        """How the gateway's certificate is checked; refuses settings that would send the API
        key in clear across a network, or trust nothing."""
        address = urlsplit(self.payment_gateway_url)
        if address.scheme == "http" and not _is_loopback(address.hostname or ""):
            raise SettingRefused(
                f"PAYMENT_GATEWAY_URL is {self.payment_gateway_url}: plain http would send the "
                "gateway's API key and the card tokens in clear. Use the gateway's https:// "
                "address (http is only for a gateway on this host)."
            )
        if not self.payment_gateway_ca_certificates:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cadata=self.payment_gateway_ca_certificates)
        except (ssl.SSLError, ValueError) as refused:
            raise SettingRefused(
                "PAYMENT_GATEWAY_CA_CERTIFICATES holds no PEM certificate that can be read "
                f"({refused}). Put the PEM of the authority that signs the gateway's "
                "certificate there, or leave it empty to trust the system's authorities."
            ) from refused


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
