"""The processor catalogue is the one list of processors, and what it declares holds together."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conveyor.domain.processors import CATALOGUE, PROCESSOR_NAMES, RETRIED_TOPICS
from conveyor.domain.resources import StreamProcessorSpec
from conveyor.domain.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("conveyor", "dashboards", "tests", "benchmarks")


def _listings(path: Path) -> list[str]:
    """Where a top-level statement of ``path`` spells out every processor name as a string."""
    found = []
    for statement in ast.parse(path.read_text(), filename=str(path)).body:
        spelled = {
            node.value
            for node in ast.walk(statement)
            if isinstance(node, ast.Constant) and node.value in PROCESSOR_NAMES
        }
        if spelled == set(PROCESSOR_NAMES):
            found.append(f"{path.relative_to(ROOT)}:{statement.lineno}")
    return found


def test_the_processors_are_listed_together_in_the_catalogue_and_nowhere_else() -> None:
    listings = [
        place
        for folder in SCANNED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for place in _listings(path)
    ]
    assert len(listings) == 1, listings
    [place] = listings
    assert place.startswith("conveyor/domain/processors.py:"), place


def test_every_processor_has_its_handler_module() -> None:
    for spec in CATALOGUE:
        module = importlib.import_module(f"conveyor.streams.processors.{spec.name}")
        assert callable(module.register), spec.name


def test_each_processor_serves_its_metrics_on_a_port_of_its_own() -> None:
    offsets = [spec.metrics_port_offset for spec in CATALOGUE]
    assert len(set(offsets)) == len(offsets)
    assert min(offsets) >= 0


def test_a_processor_reads_declared_topics_and_parks_only_records_of_its_inputs() -> None:
    declared = set(TOPICS.values())
    for spec in CATALOGUE:
        assert spec.inputs, spec.name
        assert set(spec.inputs) <= declared, spec.name
        assert set(spec.outputs) <= declared, spec.name
        assert set(spec.parks) <= set(spec.inputs), spec.name
    assert {topic.name for topic in RETRIED_TOPICS} == {
        "payments.commands",
        "orders.events",
        "inventory.events",
        "recommendations.copurchases",
    }


def test_the_stateful_processors_are_those_that_keep_tables() -> None:
    assert [spec.name for spec in CATALOGUE if spec.stateful] == [
        "orders",
        "inventory",
        "notifications",
        "recommendations",
    ]


def test_a_stream_processor_resource_names_a_processor_of_the_catalogue() -> None:
    spec = {"image": "conveyor:1", "kafka": {"bootstrapServers": "kafka:9092"}}
    assert StreamProcessorSpec.model_validate({**spec, "processor": "orders"}).processor == (
        "orders"
    )
    with pytest.raises(ValidationError) as refused:
        StreamProcessorSpec.model_validate({**spec, "processor": "shipping"})
    assert "not a processor" in str(refused.value)
    assert "projector" in str(refused.value)


def test_the_crd_lets_the_api_server_accept_exactly_the_catalogued_processors() -> None:
    definition = yaml.safe_load((ROOT / "crds" / "streamprocessors.yaml").read_text())
    [version] = definition["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert schema["processor"] == {"enum": list(PROCESSOR_NAMES), "type": "string"}
