"""The local stack's Prometheus: what it scrapes, with which labels and rules, and what it
says when the binary is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.devstack import prometheus_server
from conveyor.devstack.components import Components
from conveyor.devstack.errors import PrerequisiteMissing
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack
from conveyor.domain.processors import CATALOGUE


def local_stack(home: Path) -> LocalStack:
    return LocalStack(DevStackSettings.isolated(home), environ={})


def test_it_scrapes_the_edge_and_each_processor_under_the_jobs_the_rules_expect(
    tmp_path: Path,
) -> None:
    stack = local_stack(tmp_path)
    settings = stack.settings
    config = prometheus_server.configuration(
        Components(stack).scrape_targets(),
        [],
        scrape_interval="5s",
        evaluation_interval="5s",
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"conveyor-edge", "conveyor-processor"}
    assert jobs["conveyor-edge"]["static_configs"] == [
        {"targets": [f"127.0.0.1:{settings.api_port}"], "labels": {}}
    ]
    assert jobs["conveyor-processor"]["static_configs"] == [
        {
            "targets": [f"127.0.0.1:{settings.metrics_base_port + spec.metrics_port_offset}"],
            "labels": {"processor": spec.name},
        }
        for spec in CATALOGUE
    ]
    # The processors' metrics carry `processor` themselves; it must stay as they say it.
    assert jobs["conveyor-processor"]["honor_labels"] is True


def test_it_loads_the_rule_files_but_not_their_unit_tests() -> None:
    rules = prometheus_server.rule_files(DevStackSettings().prometheus_rules_dir)
    assert [path.name for path in rules] == ["conveyor-rules.yml"]


def test_a_missing_prometheus_stops_dev_up_before_anything_starts_and_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    components = Components(local_stack(tmp_path / "stack"))
    with pytest.raises(PrerequisiteMissing) as refused:
        components.up()
    assert "apt-get install prometheus" in str(refused.value)
    assert components.state.load() == {}
