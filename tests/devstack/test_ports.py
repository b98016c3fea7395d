"""Ports for the stack's services: never handed to two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conveyor.devstack.settings import PORT_CLAIM_SECONDS, _claim

DRAW = (
    "import sys; from conveyor.devstack.settings import free_ports; "
    "print(' '.join(map(str, free_ports(int(sys.argv[1])))))"
)


def test_two_processes_drawing_ports_at_once_never_get_the_same_one(tmp_path: Path) -> None:
    # 400 each from about 12,000: without the claims two draws would share some 13 ports.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    draws = [
        subprocess.Popen(
            [sys.executable, "-c", DRAW, "400"], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    first, second = ({int(port) for port in draw.communicate()[0].split()} for draw in draws)
    assert len(first) == len(second) == 400
    assert not first & second


def test_a_claimed_port_is_refused_until_its_claim_is_old(tmp_path: Path) -> None:
    ledger = tmp_path / "claims"
    assert _claim(range(21000, 21002), ledger)
    assert not _claim(range(21001, 21003), ledger)
    assert _claim(range(21002, 21004), ledger)
    # A claim older than PORT_CLAIM_SECONDS no longer counts (a run long gone).
    long_ago = time.time() - PORT_CLAIM_SECONDS - 1
    ledger.write_text(f"21000 {long_ago}\n21001 {long_ago}\nnot a claim\n")
    assert _claim(range(21000, 21002), ledger)
