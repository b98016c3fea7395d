"""A real Prometheus for the tests, and the check that a Grafana dashboard's queries find data.

Reusable from any test: start a :class:`PrometheusProcess` on the targets to scrape (it loads
the project's rules), produce the events a dashboard shows, then
:func:`assert_every_query_returns_data` with the dashboard loaded by :func:`load_dashboard`.

"Returns data" means at least one series with a finite value at the moment of the query: a
quantile over a window without observations is NaN, which Grafana draws as nothing.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from conveyor.devstack import prometheus_server
from conveyor.devstack.launched import Launched
from conveyor.devstack.prometheus_server import ScrapeTarget
from conveyor.devstack.settings import free_ports
from tests.support.waiting import eventually

DASHBOARDS = Path(__file__).parents[2] / "dashboards"
RULES_DIR = DASHBOARDS / "rules"
GRAFANA_DIR = DASHBOARDS / "grafana"
# What Grafana puts in for its built-in variables. The windows are as wide as the rules' (5m),
# so the check asks whether a query finds its series, not whether the last event happened
# within Grafana's narrowest window.
BUILT_IN_VARIABLES = {"__rate_interval": "5m", "__interval": "15s", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# Characters Grafana escapes in a multi-value variable's regex, as PromQL string text.
_REGEX_SPECIALS = set("\\^$.|?*+()[]{}")


class PromQLError(Exception):
    """Prometheus refused a query (bad syntax, unknown function)."""


@dataclass
class PrometheusProcess:
    """``prometheus`` scraping ``targets`` every ``interval``, with the project's rules."""

    root: Path
    targets: Sequence[ScrapeTarget]
    rules: Sequence[Path] = field(default_factory=lambda: prometheus_server.rule_files(RULES_DIR))
    interval: str = "1s"
    launched: Launched | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        [self.port] = free_ports(1)
        prometheus_server.write_configuration(
            self.root,
            self.targets,
            self.rules,
            scrape_interval=self.interval,
            evaluation_interval=self.interval,
        )
        command = prometheus_server.command(
            self.root, "127.0.0.1", self.port, prometheus_server.binary()
        )
        self.launched = Launched("prometheus", command, self.log_path)
        self.launched.start(f"{self.base_url}/-/ready", timeout)

    def stop(self) -> None:
        if self.launched is not None:
            self.launched.stop()

    def log(self, characters: int = 4000) -> str:
        return "(no log)" if self.launched is None else self.launched.log(characters)

    def _get(self, path: str, params: Mapping[str, str | list[str]]) -> Any:
        response = httpx.get(f"{self.base_url}{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {dict(params)}: {body.get('error', response.text)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant result of ``expr`` now, as a list of ``{metric, value}``."""
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, selector: str, label: str) -> list[str]:
        """The values ``label`` has on the series ``selector`` matches now."""
        values: list[str] = self._get(
            f"/api/v1/label/{label}/values",
            # The dashboards' default time range.
            {"match[]": [selector], "start": str(time.time() - 3600)},
        )
        return sorted(values)

    def targets_down(self) -> list[str]:
        active = self._get("/api/v1/targets", {"state": "active"})["activeTargets"]
        return [
            f"{target['scrapeUrl']}: {target['health']} {target['lastError']}"
            for target in active
            if target["health"] != "up"
        ]

    def target_health(self) -> list[str]:
        """Each target's health, last error and how long its last scrape took."""
        active = self._get("/api/v1/targets", {"state": "active"})["activeTargets"]
        return [
            f"{target['scrapeUrl']}: {target['health']} in {target['lastScrapeDuration']:.3f} s"
            + (f" ({target['lastError']})" if target["lastError"] else "")
            for target in active
        ]

    def wait_until_scraped(self, within: float = 120.0) -> None:
        """Until every target has answered a scrape."""
        eventually(
            self.targets_down,
            "every target answered a scrape",
            until=lambda down: not down,
            within=within,
            interval=0.5,
        )


@contextmanager
def running_prometheus(
    root: Path, targets: Sequence[ScrapeTarget], **options: Any
) -> Iterator[PrometheusProcess]:
    prometheus = PrometheusProcess(root, targets, **options)
    try:
        prometheus.start()
        yield prometheus
    finally:
        prometheus.stop()


# -- dashboards --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def load_dashboard(uid: str) -> dict[str, Any]:
    """A generated dashboard as Grafana imports it (``dashboards/grafana/<uid>.json``)."""
    loaded: dict[str, Any] = json.loads((GRAFANA_DIR / f"{uid}.json").read_text())
    return loaded


def _panels(container: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        # A collapsed row holds its panels itself.
        yield from _panels(panel)


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[DashboardQuery]:
    """Every PromQL expression of every panel, as written (variables not yet expanded)."""
    return [
        DashboardQuery(dashboard["uid"], panel["title"], target["refId"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def query_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Name -> query of each variable whose values come from Prometheus."""
    return {
        variable["name"]: variable["query"]
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable["type"] == "query"
    }


def _regex_text(value: str) -> str:
    escaped = "".join(f"\\{c}" if c in _REGEX_SPECIALS else c for c in value)
    # Inside a PromQL string a backslash is written twice.
    return escaped.replace("\\", "\\\\")


def variable_values(prometheus: PrometheusProcess, dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Each query variable as Grafana expands it with "All" selected: every value it has now,
    as a regex alternation. A variable without any value fails the check."""
    expanded = {}
    for name, definition in query_variables(dashboard).items():
        parsed = _LABEL_VALUES.match(definition.strip())
        assert parsed, f"{dashboard['uid']}: variable {name} is not label_values(...): {definition}"
        values = prometheus.label_values(parsed["selector"], parsed["label"])
        assert values, f"{dashboard['uid']}: variable {name} ({definition}) has no values"
        expanded[name] = "(" + "|".join(_regex_text(value) for value in values) + ")"
    return expanded


def expand(expr: str, values: Mapping[str, str]) -> str:
    known = {**BUILT_IN_VARIABLES, **values}

    def substitute(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        assert name in known, f"unknown variable ${name} in {expr}"
        return known[name]

    return _VARIABLE.sub(substitute, expr)


def _has_finite_value(result: Sequence[Mapping[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


def queries_without_data(
    prometheus: PrometheusProcess, queries: Sequence[DashboardQuery], values: Mapping[str, str]
) -> dict[DashboardQuery, str]:
    """Each query that finds no finite value now, with what it returned instead."""
    missing = {}
    for query in queries:
        expr = expand(query.expr, values)
        result = prometheus.query(expr)
        if not _has_finite_value(result):
            missing[query] = f"{expr} -> {result or 'no series'}"
    return missing


def assert_every_query_returns_data(
    prometheus: PrometheusProcess, dashboard: Mapping[str, Any], within: float = 120.0
) -> None:
    """Poll until each of the dashboard's queries, variables expanded, returns data."""
    queries = dashboard_queries(dashboard)
    assert queries, f"{dashboard['uid']} has no queries"

    def without_data() -> dict[str, str]:
        try:
            values = variable_values(prometheus, dashboard)
        except AssertionError as unexpanded:
            # The variables' series are not scraped yet: every query still waits.
            return {"(variables)": str(unexpanded)}
        missing = queries_without_data(prometheus, queries, values)
        return {str(query): why for query, why in missing.items()}

    eventually(
        without_data,
        f"each query of {dashboard['uid']} returns data",
        until=lambda missing: not missing,
        within=within,
        interval=1,
        context=lambda: f"targets: {prometheus.target_health()}",
    )


def assert_every_query_is_valid(
    prometheus: PrometheusProcess, dashboard: Mapping[str, Any], values: Mapping[str, str]
) -> None:
    """Prometheus accepts each query (data or not), with ``values`` for its variables."""
    for query in dashboard_queries(dashboard):
        prometheus.query(expand(query.expr, values))


# -- rules -----------------------------------------------------------------------------------


def recording_rules(rules_dir: Path = RULES_DIR) -> list[str]:
    """The name of every recording rule of the project's rule files."""
    names: list[str] = []
    for path in prometheus_server.rule_files(rules_dir):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.extend(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def assert_every_recording_rule_returns_data(
    prometheus: PrometheusProcess, within: float = 120.0
) -> None:

    def without_data() -> list[str]:
        return [name for name in recording_rules() if not _has_finite_value(prometheus.query(name))]

    eventually(
        without_data,
        "every recording rule returns data",
        until=lambda missing: not missing,
        within=within,
        interval=1,
        context=lambda: f"targets: {prometheus.target_health()}",
    )
