"""Starting, recognising and stopping the stack's background processes.

A pid alone is not an identity: after a reboot or a crash the number can belong to another
program. Every process is therefore recorded with its start time, and only a process whose
pid and start time both match is ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

# The Popen objects of the children this process started. Holding them lets `stop` reap
# them, and keeps Popen from warning that a child it forgot about is still running.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    """A process the stack started, as written to its state file."""

    service: str
    pid: int
    started_at: float
    log_file: str
    command: tuple[str, ...]

    def is_alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            # A zombie has exited; it only waits for its parent to read its status.
            return (
                abs(process.create_time() - self.started_at) < 1.0
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def spawn(
    service: str,
    command: list[str],
    log_file: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> ProcessRecord:
    """Start ``command`` detached from this terminal, appending its output to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    identity = as_user(user) if user else {}
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            # A session of its own, so Ctrl-C in the terminal that ran `dev up` spares it.
            start_new_session=True,
            **identity,
        )
    _children[process.pid] = process
    return ProcessRecord(
        service=service,
        pid=process.pid,
        started_at=psutil.Process(process.pid).create_time(),
        log_file=str(log_file),
        command=tuple(command),
    )


def as_user(user: str) -> dict[str, Any]:
    """Popen arguments that run a child as ``user`` with that user's group and no other.

    Changing only the uid would leave the child in root's group, where folder permissions
    often give it less than any other user gets.
    """
    account = pwd.getpwnam(user)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def stop(
    record: ProcessRecord, stop_signal: int = signal.SIGTERM, grace_seconds: float = 30
) -> None:
    """Ask the process to stop, and kill it if it has not within ``grace_seconds``; then kill
    what it started and left running.

    A process that stops cleanly stops its own children (the edge's uvicorn parent its
    workers); one killed here cannot, and its children would go on holding its port.
    """
    try:
        if record.is_alive():
            process = psutil.Process(record.pid)
            children = process.children(recursive=True)
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=grace_seconds)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            _kill_left_running(children)
    except psutil.NoSuchProcess:
        pass
    finally:
        child = _children.pop(record.pid, None)
        if child is not None:
            child.wait()


def _kill_left_running(children: list[psutil.Process]) -> None:
    # psutil signals a process only while its pid still names the process it was made for.
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)


def log_tail(log_file: Path, lines: int = 25) -> str:
    if not log_file.exists():
        return "(no log written)"
    with log_file.open(errors="replace") as log:
        return "".join(deque(log, maxlen=lines)).rstrip() or "(log is empty)"


def wait_until(check: Callable[[], bool], timeout_seconds: float, interval: float = 0.25) -> bool:
    """Poll ``check()`` until it returns True or the time is up."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


class StateFile:
    """The records of the processes the stack started, kept in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, ProcessRecord]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        return {
            name: ProcessRecord(**{**entry, "command": tuple(entry["command"])})
            for name, entry in raw.items()
        }

    def save(self, records: dict[str, ProcessRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({n: asdict(r) for n, r in records.items()}, indent=2))
        temporary.replace(self.path)
