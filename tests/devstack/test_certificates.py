"""The local stack's own certificate authority: a service presenting a certificate it signed
is trusted by a client that trusts the authority, for every name the certificate was made
for, and by no client that does not."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from conveyor.devstack.certificates import LocalAuthority, ServerCertificate


@asynccontextmanager
async def tls_server(certificate: ServerCertificate) -> AsyncIterator[int]:
    """A real TLS server on a free port that presents ``certificate`` and answers "hello"."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.chain, certificate.key)

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def greeting(port: int, host: str, trusted: Path | None) -> bytes:
    context = ssl.create_default_context(cafile=trusted)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=host
    )
    try:
        return await reader.read()
    finally:
        writer.close()


async def test_a_client_trusting_the_authority_reaches_the_service_by_each_of_its_names(
    tmp_path: Path,
) -> None:
    certificate = LocalAuthority(tmp_path).server("kafka", ["localhost", "127.0.0.1"])
    async with tls_server(certificate) as port:
        assert await greeting(port, "localhost", certificate.authority) == b"hello"
        assert await greeting(port, "127.0.0.1", certificate.authority) == b"hello"


async def test_a_client_that_does_not_trust_the_authority_refuses_the_service(
    tmp_path: Path,
) -> None:
    certificate = LocalAuthority(tmp_path).server("kafka", ["localhost"])
    async with tls_server(certificate) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await greeting(port, "localhost", None)
        # Nor for a name the certificate was not made for.
        with pytest.raises(ssl.SSLCertVerificationError):
            await greeting(port, "kafka.example.org", certificate.authority)


def test_what_was_made_once_is_kept_and_only_private_keys_are_hidden(tmp_path: Path) -> None:
    first = LocalAuthority(tmp_path).server("kafka", ["localhost"])
    chain = first.chain.read_bytes()
    again = LocalAuthority(tmp_path).server("kafka", ["localhost"])
    assert again.chain.read_bytes() == chain
    assert (first.key.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "ca-key.pem").stat().st_mode & 0o777) == 0o600


def test_a_certificate_asked_for_a_new_name_is_made_anew_and_covers_it(tmp_path: Path) -> None:
    authority = LocalAuthority(tmp_path)
    chain = authority.server("kafka", ["localhost"]).chain.read_bytes()
    widened = authority.server("kafka", ["localhost", "127.0.0.1"])
    assert widened.chain.read_bytes() != chain


async def test_a_certificate_of_a_replaced_authority_is_made_anew(tmp_path: Path) -> None:
    authority = LocalAuthority(tmp_path)
    authority.server("kafka", ["localhost"])
    for made in ("ca.pem", "ca-key.pem"):
        (tmp_path / made).unlink()
    certificate = LocalAuthority(tmp_path).server("kafka", ["localhost"])
    async with tls_server(certificate) as port:
        assert await greeting(port, "localhost", certificate.authority) == b"hello"
