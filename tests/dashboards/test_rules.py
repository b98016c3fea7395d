"""The Prometheus rules load, every alert has a runbook, and promtool's unit tests pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

RULES = Path(__file__).parents[2] / "dashboards" / "rules"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is missing: `make install` installs Debian's prometheus package"
    return subprocess.run(
        [executable, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
    )


def alerts() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((RULES / "conveyor-rules.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_rules_load() -> None:
    result = promtool("check", "rules", "conveyor-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", "conveyor-rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load((RULES / "conveyor-rules.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert {alert["alert"] for alert in alerts()} <= fired


def test_every_alert_has_a_summary_a_runbook_and_a_severity() -> None:
    for alert in alerts():
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert len(alert["annotations"]["runbook"]) > 80, alert["alert"]
