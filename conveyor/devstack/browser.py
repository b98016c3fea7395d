"""The machine's Chromium, for the web shop's browser tests and its screenshots.

Debian's package (``make install`` adds it), driven by Playwright by its path: a browser
build of Playwright's own is never downloaded.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# What Chromium needs on a headless machine with no GPU, no sandbox privileges and no network
# beyond loopback: nothing starts that would reach out or wait for a display.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
