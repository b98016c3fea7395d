"""What `conveyor … --help` tells an operator: every option with the variable that sets it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conveyor.cli import app


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        (["api"], ["CONVEYOR_API_HOST", "CONVEYOR_API_PORT", "CONVEYOR_API_WORKERS"]),
        (["dev", "up"], ["CONVEYOR_DEV_HOME"]),
    ],
)
def test_an_options_help_names_the_environment_variable_that_sets_it(
    command: list[str], variables: list[str]
) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for variable in variables:
        assert f"[env: {variable}" in shown.output
