"""A certificate authority of the local stack's own, and the server certificates it signs.

The local stack can run its services over TLS, as a deployment does (Kafka's SASL_SSL
listener, the payment sandbox over HTTPS). Clients then trust this authority's certificate
only, as they would a company's own CA. Everything is kept under the stack's home, made once
and reused, so clients started later trust what the services started earlier present.

Keys are RSA 2048: every client of the stack reads them (Java's PEM keystores, Python's ssl,
aiohttp, aiokafka). Private keys are PKCS #8 PEM, unencrypted, readable by their owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AUTHORITY_NAME = "Conveyor local stack CA"
AUTHORITY_DAYS = 3650
SERVER_DAYS = 825
# A certificate this close to its end is made anew rather than handed to a service.
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServerCertificate:
    """Where a service finds what it presents, and where its clients find what to trust."""

    # The server's certificate followed by the authority's: the chain a server presents.
    chain: Path
    key: Path
    # The authority's certificate alone: what a client trusts.
    authority: Path


class LocalAuthority:
    """The authority kept in ``directory`` (``ca.pem``, ``ca-key.pem``), made when missing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.certificate_path = directory / "ca.pem"
        self._key_path = directory / "ca-key.pem"

    def server(self, name: str, hosts: Sequence[str]) -> ServerCertificate:
        """A certificate for ``hosts`` (names or IP addresses), signed by the authority and
        kept as ``<name>.pem`` and ``<name>-key.pem``; the kept one when it still covers
        ``hosts`` and is not about to expire."""
        authority_key, authority_certificate = self._authority()
        chain_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}-key.pem"
        if not _still_serves(chain_path, key_path, hosts, authority_certificate):
            key = _new_key()
            now = datetime.datetime.now(datetime.UTC)
            certificate = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(authority_certificate.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                )
                .sign(authority_key, hashes.SHA256())
            )
            _write_private(key_path, _key_pem(key))
            chain_path.write_bytes(
                certificate.public_bytes(serialization.Encoding.PEM)
                + authority_certificate.public_bytes(serialization.Encoding.PEM)
            )
        return ServerCertificate(chain_path, key_path, self.certificate_path)

    def _authority(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        if self.certificate_path.exists() and self._key_path.exists():
            key = serialization.load_pem_private_key(self._key_path.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(self.certificate_path.read_bytes())
            if isinstance(key, rsa.RSAPrivateKey) and not _expiring(certificate):
                return key, certificate
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, AUTHORITY_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=AUTHORITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_private(self._key_path, _key_pem(key))
        self.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return key, certificate


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(0o600)  # never readable by others, not even for a moment
    path.chmod(0o600)
    path.write_bytes(content)


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _expiring(certificate: x509.Certificate) -> bool:
    return certificate.not_valid_after_utc - RENEW_BEFORE < datetime.datetime.now(datetime.UTC)


def _still_serves(
    chain_path: Path, key_path: Path, hosts: Sequence[str], authority: x509.Certificate
) -> bool:
    if not (chain_path.exists() and key_path.exists()):
        return False
    certificate = x509.load_pem_x509_certificate(chain_path.read_bytes())
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):  # signed by an authority since replaced
        return False
    if _expiring(certificate):
        return False
    covered = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return all(name in covered for name in _names(hosts))
