"""The mailer against a real SMTP server: one connection for many emails, a new one once the
server is back, and an SMTP_URL it cannot use refused at once."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from conveyor.devstack.settings import free_ports
from conveyor.devstack.smtp_sink import read_mailbox
from conveyor.infra.mail import Attachment, Mailer, compose
from conveyor.streams.metrics import SMTP_CONNECTIONS
from conveyor.streams.runtime import TRANSIENT_ERRORS
from tests.devstack.sink import start_sink, stop_sink

SENDER = "Conveyor <test@conveyor.local>"


class Server:
    def __init__(self, port: int, maildir: Path) -> None:
        self.port, self.maildir = port, maildir
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = await asyncio.to_thread(start_sink, self.port, self.maildir)

    async def stop(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(stop_sink, self.process)
            self.process = None


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    [port] = free_ports(1)
    running = Server(port, tmp_path / "mail")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def connections_opened() -> float:
    return REGISTRY.get_sample_value("conveyor_smtp_connections_total") or 0.0


def email() -> Message:
    return compose(uuid.uuid4(), SENDER, "ada@example.com", "Your order", "It is confirmed.")


async def test_many_emails_go_over_one_connection(server: Server) -> None:
    mailer = Mailer(f"smtp://127.0.0.1:{server.port}", SMTP_CONNECTIONS)
    opened = connections_opened()
    sent = [email() for _ in range(20)]
    try:
        for each in sent:
            await mailer.send(each)
    finally:
        await mailer.close()
    assert connections_opened() - opened == 1
    received = [mail.message_id for mail in read_mailbox(server.maildir)]
    assert received == [each["Message-ID"] for each in sent]


async def test_a_server_that_went_away_fails_a_send_then_a_new_connection_works(
    server: Server,
) -> None:
    mailer = Mailer(f"smtp://127.0.0.1:{server.port}", SMTP_CONNECTIONS)
    try:
        await mailer.send(email())
        await server.stop()
        with pytest.raises(TRANSIENT_ERRORS):
            await mailer.send(email())
        await server.start()
        opened = connections_opened()
        await mailer.send(email())
        # Restarted while the connection sat idle: the next email still goes through.
        await server.stop()
        await server.start()
        await mailer.send(email())
    finally:
        await mailer.close()
    assert connections_opened() - opened == 2
    assert len(read_mailbox(server.maildir)) == 3


async def test_an_email_arrives_as_composed_whatever_the_characters_of_its_body(
    server: Server,
) -> None:
    notification = uuid.uuid4()
    body = "Thank you, Zoë! Your order of two mugs (5.00 €) is confirmed."
    mailer = Mailer(f"smtp://127.0.0.1:{server.port}", SMTP_CONNECTIONS)
    try:
        await mailer.send(compose(notification, SENDER, "zoe@example.com", "Your order 1f2e", body))
    finally:
        await mailer.close()
    [received] = read_mailbox(server.maildir)
    assert received.envelope_to == ("zoe@example.com",)
    assert (received.subject, received.message_id) == (
        "Your order 1f2e",
        f"<{notification}@conveyor.local>",
    )
    assert received.body.strip() == body


@pytest.mark.parametrize("subject", ["Your invoice 1f2e", "Ihre Rechnung für Zoë"])
async def test_an_attached_file_arrives_byte_for_byte_beside_the_body(
    server: Server, subject: str
) -> None:
    """A confirmation with its invoice: composed with the plain classes for an ASCII subject,
    with ``EmailMessage`` (SMTPUTF8) otherwise; the reader gets the same either way."""
    content = bytes(range(256)) * 8
    body = "Thank you, Zoë! Your invoice 2026-000042 is attached."
    mailer = Mailer(f"smtp://127.0.0.1:{server.port}", SMTP_CONNECTIONS)
    invoice = Attachment("invoice-2026-000042.pdf", content)
    try:
        composed = compose(uuid.uuid4(), SENDER, "zoe@example.com", subject, body, [invoice])
        await mailer.send(composed)
    finally:
        await mailer.close()
    [received] = read_mailbox(server.maildir)
    assert received.subject == subject
    assert received.body.strip() == body
    [attached] = list(received.message.iter_attachments())
    assert attached.get_content_type() == "application/pdf"
    assert attached.get_filename() == "invoice-2026-000042.pdf"
    assert attached.get_content() == content


@pytest.mark.parametrize("url", ["http://mail:25", "smtp://", "mail:25"])
def test_an_smtp_url_it_cannot_use_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL must look like"):
        Mailer(url, SMTP_CONNECTIONS)
