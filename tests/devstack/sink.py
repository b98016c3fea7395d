"""Starting the SMTP sink as its own process, for the tests that need a mail server alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conveyor.devstack.processes import wait_until
from conveyor.devstack.smtp_sink import smtp_is_healthy


def start_sink(port: int, maildir: Path) -> subprocess.Popen[bytes]:
    """A sink on 127.0.0.1:``port`` storing into ``maildir``, once it answers SMTP."""
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.devstack.smtp_sink",
         "--port", str(port), "--maildir", str(maildir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    if not wait_until(lambda: smtp_is_healthy("127.0.0.1", port), timeout_seconds=20):
        process.terminate()
        process.wait(timeout=10)
        raise RuntimeError(f"the SMTP sink did not answer on port {port} within 20 s")
    return process


def stop_sink(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)
