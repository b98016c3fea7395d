"""The SMTP sink accepts mail over real SMTP and keeps exactly what was sent, to whom."""

from __future__ import annotations

import signal
import smtplib
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from conveyor.devstack.settings import free_ports
from conveyor.devstack.smtp_sink import read_mailbox, smtp_is_healthy
from tests.devstack.sink import start_sink, stop_sink
from tests.support.waiting import eventually


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    [port] = free_ports(1)
    maildir = tmp_path / "mail"
    process = start_sink(port, maildir)
    try:
        yield port, maildir, process
    finally:
        stop_sink(process)


def send(port: int, to: list[str], subject: str, body: str = "Hello") -> None:
    message = EmailMessage()
    message["From"] = "orders@conveyor.example"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)


def test_a_sent_mail_is_stored_with_its_recipient_subject_and_body(
    sink: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, maildir, _ = sink
    send(port, ["ada@example.com"], "Your order is confirmed", "Order 42 is on its way.")
    [mail] = read_mailbox(maildir)
    assert mail.envelope_to == ("ada@example.com",)
    assert mail.envelope_from == "orders@conveyor.example"
    assert mail.subject == "Your order is confirmed"
    assert "Order 42 is on its way." in mail.body


def test_two_mails_are_two_messages_in_the_order_they_arrived(
    sink: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, maildir, _ = sink
    send(port, ["ada@example.com"], "first")
    send(port, ["bob@example.com"], "second")
    assert [mail.subject for mail in read_mailbox(maildir)] == ["first", "second"]


def test_a_mail_to_two_recipients_is_kept_once_with_both(
    sink: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, maildir, _ = sink
    send(port, ["ada@example.com", "bob@example.com"], "shared")
    [mail] = read_mailbox(maildir)
    assert mail.envelope_to == ("ada@example.com", "bob@example.com")


def test_the_sink_logs_each_mail_with_its_subject_as_a_mail_client_shows_it(
    tmp_path: Path,
) -> None:
    [port] = free_ports(1)
    log = tmp_path / "sink.log"
    process = start_sink(port, tmp_path / "mail", log)
    try:
        send(port, ["ada@example.com"], "Bestätigung Ihrer Bestellung ✓")
        eventually(lambda: "received mail" in log.read_text(), "the sink logs the mail", within=10)
    finally:
        stop_sink(process)
    assert "ada@example.com: 'Bestätigung Ihrer Bestellung ✓'" in log.read_text()


def test_the_sink_stops_cleanly_when_asked(
    sink: tuple[int, Path, subprocess.Popen[bytes]],
) -> None:
    port, _, process = sink
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert not smtp_is_healthy("127.0.0.1", port)


def test_an_empty_or_missing_maildir_reads_as_no_mail(tmp_path: Path) -> None:
    assert read_mailbox(tmp_path / "nothing-here") == []
