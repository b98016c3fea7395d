"""How every Kafka client of Conveyor connects and logs in: the one place its options are made.

PLAINTEXT (the default, the local stack's) sends everything in the clear and logs in as no
one. SASL_SSL wraps every connection in TLS, checks the broker's certificate against a trusted
authority and its name against the address dialled, and logs in with SCRAM, which never sends
the password itself.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from conveyor.infra.errors import ServiceSettingsRefused


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    # The PEM certificates of the authorities the brokers' certificates are checked against;
    # empty: the system's trusted authorities. The PEM itself rather than a file, so a
    # Kubernetes Secret key can hold it (processor pods mount no files).
    ca_certificates: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a SASL_SSL connection: certificate and host name checked."""
        if self.protocol == "PLAINTEXT":
            return None
        try:
            return ssl.create_default_context(cadata=self.ca_certificates or None)
        except (ssl.SSLError, ValueError) as exc:
            raise ServiceSettingsRefused(
                f"KAFKA_SSL_CA_CERTIFICATES holds no PEM certificate that can be read ({exc}): "
                "put there the PEM certificate of the authority that signed the brokers' "
                "certificates, or leave it empty to trust the system's authorities"
            ) from exc

    def client_options(self) -> dict[str, Any]:
        """The options of an aiokafka producer, consumer or admin client."""
        if self.protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": self.ssl_context(),
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


PLAINTEXT = KafkaSecurity()
