"""Starting the SMTP sink as its own process, for the tests that need a mail server alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from conveyor.devstack.smtp_sink import smtp_is_healthy
from tests.support.waiting import eventually


def start_sink(port: int, maildir: Path, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A sink on 127.0.0.1:``port`` storing into ``maildir``, once it answers SMTP; what it
    prints goes to ``log`` if given."""
    with contextlib.ExitStack() as closing:
        output = closing.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.devstack.smtp_sink",
             "--port", str(port), "--maildir", str(maildir)],
            stdout=output,
        )  # fmt: skip
    try:
        eventually(
            lambda: smtp_is_healthy("127.0.0.1", port),
            f"the SMTP sink answers on port {port}",
            within=20,
        )
    except AssertionError:
        stop_sink(process)
        raise
    return process


def stop_sink(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)
