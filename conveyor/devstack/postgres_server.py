"""A real PostgreSQL server from the binaries the `pgserver` wheel ships, listening on loopback TCP.

The wheel's own Python wrapper is not used: it ties the server's life to the Python process
that asked for it, while the stack wants a server that outlives `conveyor dev up`.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from rich.console import Console

from conveyor.devstack.errors import DevStackError, PrerequisiteMissing
from conveyor.devstack.processes import as_user
from conveyor.devstack.settings import DevStackSettings

# PostgreSQL refuses to run as root; when the stack runs as root it runs the server as this
# unprivileged system user instead.
SERVER_USER = "conveyor"


def binaries_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteMissing(
            "PostgreSQL's binaries come from the `pgserver` wheel, which is not installed; "
            "run `make install` (or `uv sync --locked --all-extras`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_user() -> str | None:
    """The user to run PostgreSQL as, created when missing; None when not running as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SERVER_USER


def _let_user_reach(path: Path, user: str) -> None:
    """Give ``user`` ownership of ``path`` and the right to traverse every folder above it."""
    account = pwd.getpwnam(user)
    for folder, _, files in os.walk(path):
        os.chown(folder, account.pw_uid, account.pw_gid)
        for name in files:
            os.chown(Path(folder) / name, account.pw_uid, account.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare(settings: DevStackSettings, console: Console) -> tuple[list[str], str | None]:
    """Create the cluster's data directory once; return the server command and its user."""
    binaries = binaries_dir()
    data = settings.root / "postgres"
    user = server_user()
    if not (data / "PG_VERSION").exists():
        console.print(f"[bold]postgres[/]: creating a new cluster in {data}")
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        if user is not None:
            _let_user_reach(data, user)
        initdb = [
            str(binaries / "initdb"), "--pgdata", str(data), "--username", "postgres",
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-instructions",
        ]  # fmt: skip
        created = subprocess.run(
            initdb, check=False, capture_output=True, text=True, **(as_user(user) if user else {})
        )
        if created.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise DevStackError(
                f"initdb could not create PostgreSQL's data in {data}:\n"
                f"{created.stdout[-1500:]}{created.stderr[-1500:]}"
            )
    elif user is not None:
        _let_user_reach(data, user)
    command = [
        str(binaries / "postgres"),
        "-D",
        str(data),
        "-p",
        str(settings.postgres_port),
        "-c",
        f"listen_addresses={settings.host}",
        # TCP only: a socket file in a shared folder would clash between stacks.
        "-c",
        "unix_socket_directories=",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    return command, user


def server_dsn(settings: DevStackSettings, database: str = "postgres") -> str:
    return f"postgresql://postgres@{settings.host}:{settings.postgres_port}/{database}"
