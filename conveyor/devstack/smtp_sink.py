"""An SMTP sink: a real SMTP server (aiosmtpd) that accepts every mail and keeps it in a Maildir.

It stands in for the mail server, an outside party, so tests can read exactly what was sent
to whom. Run it with ``python -m conveyor.devstack.smtp_sink --port N --maildir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

ENVELOPE_FROM = "X-Conveyor-Envelope-From"
ENVELOPE_TO = "X-Conveyor-Envelope-To"
RECEIVED_AT = "X-Conveyor-Received-At"


class MaildirHandler:
    """Stores each received message once, with the SMTP envelope added as headers."""

    def __init__(self, maildir: Path) -> None:
        self.mailbox = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.original_content
        # Stored as received, the envelope's headers put in front: parsing the whole message
        # (its attached PDF included) and writing it out again cost four times the rest, and
        # at a shop's pace this stand-in shares the machine with everything it stands beside.
        # The envelope, not the headers, says who the mail really went to (Bcc included).
        stored = (
            _header_line(ENVELOPE_FROM, envelope.mail_from)
            + _header_line(ENVELOPE_TO, ", ".join(envelope.rcpt_tos))
            + _header_line(RECEIVED_AT, datetime.now(UTC).isoformat())
            + content
        )
        self.mailbox.add(stored)
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(content)
        # As a mail client shows it: a subject beyond ASCII travels as RFC 2047 encoded words.
        subject = str(make_header(decode_header(str(headers.get("Subject", "")))))
        print(
            f"received mail to {', '.join(envelope.rcpt_tos)}: {subject!r} "
            f"{headers.get('Message-ID', '')}",
            flush=True,
        )
        return "250 Message accepted for delivery"


def _header_line(name: str, value: str) -> bytes:
    """One header, ending as the message's own lines do (SMTP's CRLF). ASCII: the sink does
    not offer SMTPUTF8, so the envelope's addresses are."""
    return f"{name}: {value}\r\n".encode("ascii")


@dataclass(frozen=True)
class ReceivedMail:
    envelope_from: str
    envelope_to: tuple[str, ...]
    subject: str
    message_id: str
    body: str
    received_at: datetime
    message: EmailMessage


# Each message of a maildir parsed once per process, by its file's key: a delivered message
# never changes, and a test session reads the stack's growing maildir thousands of times
# (parsing every message again, PDFs included, made reading it cost minutes).
_PARSED: dict[tuple[Path, str], ReceivedMail] = {}


def read_mailbox(maildir: Path, recipient: str | None = None) -> list[ReceivedMail]:
    """Every message the sink stored in ``maildir``, oldest first; only those to ``recipient``
    when given (the others are not parsed, which keeps reading a full maildir cheap)."""
    if not maildir.exists():
        return []
    received = []
    box = mailbox.Maildir(maildir, create=False)
    for key in box.iterkeys():
        parsed = _PARSED.get((maildir, key))
        if parsed is None:
            raw = box.get_bytes(key)
            if recipient is not None and recipient.encode() not in raw:
                continue
            parsed = _PARSED[(maildir, key)] = _received(raw)
        received.append(parsed)
    if recipient is not None:
        received = [mail for mail in received if recipient in mail.envelope_to]
    return sorted(received, key=lambda mail: mail.received_at)


def _received(raw: bytes) -> ReceivedMail:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body_part = message.get_body(("plain", "html"))
    return ReceivedMail(
        envelope_from=str(message[ENVELOPE_FROM]),
        envelope_to=tuple(a.strip() for a in str(message[ENVELOPE_TO]).split(",")),
        subject=str(message.get("Subject", "")),
        message_id=str(message.get("Message-ID", "")),
        body="" if body_part is None else str(body_part.get_content()),
        received_at=datetime.fromisoformat(str(message[RECEIVED_AT])),
        message=message,
    )


def smtp_is_healthy(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an SMTP server greets and answers NOOP at host:port."""
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as client:
            code, _ = client.noop()
            return code == 250
    except (OSError, smtplib.SMTPException):
        return False


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11025)
    parser.add_argument("--maildir", type=Path, required=True)
    arguments = parser.parse_args(argv)
    controller = Controller(
        MaildirHandler(arguments.maildir), hostname=arguments.host, port=arguments.port
    )
    controller.start()
    print(
        f"SMTP sink on {arguments.host}:{arguments.port}, storing in {arguments.maildir}",
        flush=True,
    )

    async def wait_for_stop() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, stopping.set)
        await stopping.wait()

    try:
        asyncio.run(wait_for_stop())
    finally:
        controller.stop()
    print("SMTP sink stopped", flush=True)


if __name__ == "__main__":
    main()
