"""Sending the customer's emails over SMTP (SMTP_URL), with a Message-ID fixed per email.

A fixed Message-ID means that if an email ever has to be sent again (the processor died
between sending and recording it), mail clients show it once.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit
from uuid import UUID

SENDER = "Conveyor <orders@conveyor.local>"


def compose(notification_id: UUID, recipient: str, subject: str, body: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = SENDER
    email["To"] = recipient
    email["Subject"] = subject
    email["Message-ID"] = f"<{notification_id}@conveyor.local>"
    email.set_content(body)
    return email


async def send(smtp_url: str, email: EmailMessage, timeout_seconds: float = 10.0) -> None:
    address = urlsplit(smtp_url)
    if address.scheme not in ("smtp", "smtps") or not address.hostname:
        raise ValueError(f"SMTP_URL must look like smtp://host:port, not {smtp_url!r}")

    host = address.hostname

    def deliver() -> None:
        port = address.port or (465 if address.scheme == "smtps" else 25)
        client_class = smtplib.SMTP_SSL if address.scheme == "smtps" else smtplib.SMTP
        with client_class(host, port, timeout=timeout_seconds) as client:
            if address.username:
                client.login(address.username, address.password or "")
            client.send_message(email)

    await asyncio.to_thread(deliver)
