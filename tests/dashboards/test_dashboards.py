"""The Grafana dashboards: generated from dashboards/*.py, committed as generated, and reading
only metrics Conveyor exposes (their data is checked in test_queries.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from conveyor.api import metrics as edge_metrics
from conveyor.domain.processors import PROCESSOR_NAMES
from conveyor.operator import metrics as operator_metrics
from conveyor.streams import metrics as processor_metrics
from dashboards.generate import rendered
from dashboards.processors import uid
from tests.dashboards.prometheus import (
    DASHBOARDS,
    GRAFANA_DIR,
    dashboard_queries,
    expand,
    load_dashboard,
    query_variables,
    recording_rules,
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CONVEYOR_NAME = re.compile(r"\bconveyor[_:][\w:]*")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exposed(module: ModuleType) -> Iterator[tuple[str, str]]:
    """(family name, type) of every metric the module defines."""
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                yield family.name, family.type


def exposed_series_names() -> set[str]:
    return {
        name + suffix
        for module in (edge_metrics, processor_metrics, operator_metrics)
        for name, kind in exposed(module)
        for suffix in SUFFIXES[kind]
    }


def dashboards() -> list[dict[str, Any]]:
    return [load_dashboard(path.stem) for path in sorted(GRAFANA_DIR.glob("*.json"))]


def test_the_committed_dashboards_are_what_the_code_generates() -> None:
    committed = {path.name: path.read_text() for path in GRAFANA_DIR.glob("*.json")}
    assert committed == rendered(), "dashboards/grafana/ is stale: run `make dashboards`"


def test_there_is_an_overview_a_dashboard_per_processor_and_one_for_the_operator() -> None:
    assert {board["uid"] for board in dashboards()} == {
        "conveyor-overview",
        "conveyor-operator",
        *(uid(processor) for processor in PROCESSOR_NAMES),
    }


def test_every_metric_a_dashboard_reads_is_exposed_or_recorded() -> None:
    known = exposed_series_names() | set(recording_rules())
    for board in dashboards():
        for query in dashboard_queries(board):
            names = set(_CONVEYOR_NAME.findall(_STRING.sub('""', query.expr)))
            assert names <= known, f"{query}: {names - known} is neither exposed nor recorded"


def test_every_panel_says_what_it_shows_and_queries_prometheus_through_the_variable() -> None:
    for board in dashboards():
        panels = [panel for panel in board["panels"] if panel["type"] != "row"]
        assert panels, board["uid"]
        for panel in panels:
            assert panel["title"]
            assert len(panel["description"]) > 20, panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert ref_ids, panel["title"]
            assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), board["uid"]


def test_every_variable_a_query_uses_is_defined() -> None:
    for board in dashboards():
        values = dict.fromkeys(query_variables(board), "(x)")
        for query in dashboard_queries(board):
            assert "$" not in expand(query.expr, values), query


def test_the_readme_describes_every_metric_conveyor_exposes() -> None:
    readme = (DASHBOARDS / "README.md").read_text()
    for module in (edge_metrics, processor_metrics, operator_metrics):
        for name, kind in exposed(module):
            documented = name + SUFFIXES[kind][0] if kind == "counter" else name
            assert f"`{documented}`" in readme, f"{documented} is missing from dashboards/README.md"
