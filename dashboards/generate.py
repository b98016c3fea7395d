"""Every dashboard, rendered to the JSON files Grafana imports (``dashboards/grafana/``)."""

from __future__ import annotations

from pathlib import Path

from conveyor.domain.processors import PROCESSOR_NAMES
from dashboards.operator import operator_dashboard
from dashboards.overview import overview
from dashboards.panels import to_json
from dashboards.processors import processor_dashboard

OUTPUT = Path(__file__).parent / "grafana"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    boards = [
        overview(),
        *(processor_dashboard(name) for name in PROCESSOR_NAMES),
        operator_dashboard(),
    ]
    return {f"{board.uid}.json": to_json(board) for board in boards}


def write(output: Path = OUTPUT) -> list[Path]:
    """Write every dashboard into ``output``, removing files of dashboards that are gone."""
    output.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for stale in output.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = output / name
        path.write_text(text)
        written.append(path)
    return written
