"""The few kinds of panels and variables every dashboard is made of, styled once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
TAG = "conveyor"
# Panels are two to a row unless they say otherwise.
HALF = 12
THIRD = 8
HEIGHT = 8
EDGE_LATENCY_OBJECTIVE_SECONDS = 0.2

Panel = Builder[model.Panel]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and how its series are named in the legend."""

    expr: str
    legend: str = ""


def _targets(queries: Sequence[Query], *, instant: bool) -> list[Builder[Dataquery]]:
    targets: list[Builder[Dataquery]] = []
    for position, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend or "__auto")
            .ref_id(chr(ord("A") + position))
        )
        targets.append(target.instant() if instant else target.range())
    return targets


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> board.ThresholdsConfig:
    return (
        board.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str,
    span: int = HALF,
    objective: float | None = None,
) -> Panel:
    """A time series; ``objective`` draws a dashed red line at that value."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=False))
        .unit(unit)
        .min(0)
        .span(span)
        .height(HEIGHT)
        .fill_opacity(10)
        .show_points(common_model.VisibilityMode.NEVER)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_model.LegendDisplayMode.LIST)
            .placement(common_model.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_model.TooltipDisplayMode.MULTI)
            .sort(common_model.SortOrder.DESCENDING)
        )
    )
    if objective is not None:
        panel = panel.thresholds(
            _thresholds([(None, "green"), (objective, "red")])
        ).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_model.GraphTresholdsStyleMode.DASHED)
        )
    return panel


def single_value(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    span: int = THIRD,
    mappings: dict[str, str] | None = None,
) -> Panel:
    """The current value of one expression, coloured by ``thresholds``."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query], instant=False))
        .unit(unit)
        .span(span)
        .height(HEIGHT)
        .thresholds(_thresholds(thresholds))
        .color_mode(common_model.BigValueColorMode.BACKGROUND)
        .graph_mode(common_model.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(
            [
                model.ValueMap(
                    options={
                        value: model.ValueMappingResult(text=text)
                        for value, text in mappings.items()
                    }
                )
            ]
        )
    return panel


def totals(
    title: str, description: str, queries: Sequence[Query], *, unit: str, span: int = HALF
) -> Panel:
    """Bars of how much of each series happened over the dashboard's time range."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=True))
        .unit(unit)
        .min(0)
        .span(span)
        .height(HEIGHT)
        .display_mode(common_model.BarGaugeDisplayMode.BASIC)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def row(title: str) -> board.Row:
    return board.Row(title)


def datasource_variable() -> board.DatasourceVariable:
    return board.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus")


def label_variable(name: str, label: str, selector: str, *, title: str) -> board.QueryVariable:
    """Every value ``label`` has on the series of ``selector``; all of them at first."""
    return (
        board.QueryVariable(name)
        .label(title)
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, {label})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[board.QueryVariable],
    rows: Sequence[tuple[str, Sequence[Panel]]],
) -> model.Dashboard:
    built = (
        board.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
        .link(
            board.DashboardLink("Conveyor")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )
    for variable in variables:
        built = built.with_variable(variable)
    for title_of_row, panels in rows:
        built = built.with_row(row(title_of_row))
        for panel in panels:
            built = built.with_panel(panel)
    result = built.build()
    # Grafana tells panels apart by id (links, editing, "view panel"); the builder leaves 0.
    for number, placed in enumerate(result.panels or [], start=1):
        placed.id_val = number
    return result


def to_json(generated: model.Dashboard) -> str:
    return json.dumps(generated, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
