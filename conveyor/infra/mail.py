"""Sending emails over SMTP (SMTP_URL), with a Message-ID fixed per email.

The notifications processor sends the customers' order emails with it, the edge the account
emails (address verification, password reset). A fixed Message-ID means that if an email
ever has to be sent again (its sender died between sending and recording it), mail clients
show it once.

``Mailer`` keeps one SMTP connection open and sends every email over it, one after another,
instead of paying a connection (and a login) per email. A failed send closes the connection,
so the next try starts on a fresh one: the caller retries (``runtime.retrying``), the mailer
reconnects. ``smtp://`` is plain SMTP, ``smtps://`` SMTP over TLS from the first byte (465);
``user:password@`` in the URL logs in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.charset import QP, Charset
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from urllib.parse import urlsplit
from uuid import UUID

import aiosmtplib
from prometheus_client import Counter

# Servers close connections that stay idle (Postfix after 300 s, others sooner): one idle
# this long is checked with a NOOP before it carries an email, so a closed one is replaced
# at once instead of failing a send and waiting for a retry.
IDLE_CHECK_SECONDS = 30.0


# Bodies readable as they travel (quoted-printable), whatever their characters.
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email (an invoice's PDF)."""

    filename: str
    content: bytes
    content_type: str = "application/pdf"


def compose(
    email_id: UUID,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
) -> Message:
    """The email, with the standard library's plain (compat32) message classes when it can.

    ``EmailMessage`` parses every header into objects and back: composing one cost more than
    everything else a notification takes, about 45 times the plain class, and with an invoice
    attached it took as long as rendering the invoice. Only an address or subject beyond
    ASCII needs it: the plain classes cannot ask the server for SMTPUTF8.
    """
    email: Message
    if recipient.isascii() and subject.isascii():
        text = Message()
        # Sets the MIME version, text/plain in UTF-8 and the transfer encoding too.
        text.set_payload(body, _UTF8)
        if attachments:
            email = MIMEMultipart()
            email.attach(text)
            for attachment in attachments:
                _, subtype = attachment.content_type.split("/", 1)
                part = MIMEApplication(attachment.content, subtype)
                part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
                email.attach(part)
        else:
            email = text
    else:
        rich = EmailMessage()
        rich.set_content(body)
        for attachment in attachments:
            maintype, subtype = attachment.content_type.split("/", 1)
            rich.add_attachment(
                attachment.content,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
            )
        email = rich
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = subject
    email["Message-ID"] = f"<{email_id}@conveyor.local>"
    return email


class Mailer:
    """One SMTP connection to ``smtp_url``, opened when first needed and kept for the next.

    ``connections`` counts the connections opened, in the metrics of the component that
    sends: its own, since a processor's and the edge's connections are watched apart.
    """

    def __init__(self, smtp_url: str, connections: Counter, timeout_seconds: float = 10.0) -> None:
        address = urlsplit(smtp_url)
        if address.scheme not in ("smtp", "smtps") or not address.hostname:
            raise ValueError(f"SMTP_URL must look like smtp://host:port, not {smtp_url!r}")
        self._hostname = address.hostname
        self._over_tls = address.scheme == "smtps"
        self._port = address.port or (465 if self._over_tls else 25)
        self._username = address.username or None
        self._password = (address.password or "") if address.username else None
        self._timeout_seconds = timeout_seconds
        self._connections = connections
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    async def send(self, email: Message) -> None:
        """Hand ``email`` to the server; any failure closes the connection and is raised."""
        try:
            client = await self._connection()
            await client.send_message(email)
        except BaseException:
            self._drop()
            raise
        self._last_used = time.monotonic()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _connection(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            if time.monotonic() - self._last_used < IDLE_CHECK_SECONDS:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                self._drop()
        client = aiosmtplib.SMTP(
            hostname=self._hostname,
            port=self._port,
            use_tls=self._over_tls,
            # smtp:// is plain SMTP, as it always was: never upgraded with STARTTLS.
            start_tls=False,
            username=self._username,
            password=self._password,
            timeout=self._timeout_seconds,
        )
        await client.connect()  # logs in too, when the URL names a user
        self._connections.inc()
        self._client = client
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
