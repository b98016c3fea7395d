"""Where the outside services are: one URL each, from the environment.

Every component reads the same five variables, so a deployment points Conveyor at existing
Kafka, PostgreSQL, Redis, SMTP and payment gateway by setting them: the gateway's API key
and the authority its certificate is checked against beside its URL, and Kafka's credentials
beside its brokers. The defaults are the addresses the local stack (``conveyor dev up``)
listens on. TLS to PostgreSQL and Redis is asked for in their URLs (``?sslmode=verify-full``,
``rediss://``), which are handed to their clients whole.
"""

import ipaddress
import ssl
from functools import lru_cache
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.infra.errors import ServiceSettingsRefused
from conveyor.infra.kafka_security import KafkaSecurity

SERVICE_URL_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "PAYMENT_GATEWAY_URL",
    "PAYMENT_GATEWAY_API_KEY",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_CERTIFICATES",
    "PAYMENT_GATEWAY_CA_CERTIFICATES",
)
KAFKA_SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_certificates",
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

    # PLAINTEXT, or SASL_SSL: TLS to the brokers and a SCRAM login over it.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    # PEM certificates of the authorities the brokers' certificates are checked against;
    # empty: the system's trusted authorities. The PEM itself, as for the payment gateway.
    kafka_ssl_ca_certificates: str = ""

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        if self.kafka_security_protocol != "SASL_SSL":
            return self
        if not self.kafka_sasl_username or not self.kafka_sasl_password.get_secret_value():
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD: set both (a deployment takes them from its Kafka "
                "credentials Secret), or set KAFKA_SECURITY_PROTOCOL=PLAINTEXT"
            )
        try:
            self.kafka_security().ssl_context()
        except ServiceSettingsRefused as refused:
            raise ValueError(str(refused)) from None
        return self

    def kafka_security(self) -> KafkaSecurity:
        """How this component's Kafka clients connect and log in."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
            ca_certificates=self.kafka_ssl_ca_certificates,
        )

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
            raise ServiceSettingsRefused(
                f"PAYMENT_GATEWAY_URL is {self.payment_gateway_url}: plain http would send the "
                "gateway's API key and the card tokens in clear. Use the gateway's https:// "
                "address (http is only for a gateway on this host)."
            )
        if not self.payment_gateway_ca_certificates:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cadata=self.payment_gateway_ca_certificates)
        except (ssl.SSLError, ValueError) as refused:
            raise ServiceSettingsRefused(
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
    """The settings from the environment; ServiceSettingsRefused says what is wrong."""
    try:
        return ServiceUrls()
    except ValidationError as error:
        raise settings_refused(error) from None


def settings_refused(error: ValidationError, env_prefix: str = "") -> ServiceSettingsRefused:
    """What a settings model refused, as ``VARIABLE: reason`` for each variable (a rule over
    several variables says its reason alone): the names a user sets, not the model's fields."""
    reasons = "; ".join(
        issue["msg"].removeprefix("Value error, ")
        if not issue["loc"]
        else f"{env_prefix}{str(issue['loc'][0]).upper()}: {issue['msg']}"
        for issue in error.errors()
    )
    return ServiceSettingsRefused(reasons)


class RetentionSettings(BaseSettings):
    """How long the bookkeeping of finished orders is kept, for every component alike.

    The processors keep finished sagas, sold and released holds and dedupe entries this
    long after their last change, and refuse a record older than this (the entries that
    would recognize it as a redelivery may be gone). The edge lets a confirmed order be
    cancelled only within this long of its confirmation, while its saga still exists.
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore", frozen=True)

    state_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)


class SellerSettings(BaseSettings):
    """Who sells: the details every invoice carries, read by the edge and the processors alike
    (the edge renders invoices for download, the notifications processor attaches them).

    Each invoice keeps the details it was issued with, so changing them changes only the
    invoices issued afterwards.
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_SELLER_", extra="ignore", frozen=True)

    name: str = Field(default="Conveyor Demo Shop", min_length=1)
    # Lines separated by newlines (or ", " in a one-line variable).
    address: str = Field(default="1 Example Street\n10115 Berlin\nGermany", min_length=1)
    tax_id: str = Field(default="DE000000000", min_length=1)
    email: str = Field(default="billing@conveyor.example", min_length=1)


@lru_cache
def get_seller_settings() -> SellerSettings:
    """The seller's details from the environment; ServiceSettingsRefused says what is wrong."""
    try:
        return SellerSettings()
    except ValidationError as error:
        raise settings_refused(error, "CONVEYOR_SELLER_") from None
