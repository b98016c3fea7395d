"""The CRDs in crds/ are what the resource models generate, and structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from conveyor.domain.resources import Autoscaling, KafkaConnection, StreamProcessorSpec
from conveyor.operator.crds import definitions, render

CRDS = Path(__file__).parents[2] / "crds"


@pytest.mark.parametrize("name", sorted(definitions()))
def test_the_committed_crd_is_what_the_models_generate(name: str) -> None:
    committed = (CRDS / name).read_text()
    assert committed == render(definitions()[name]), (
        f"crds/{name} is out of date: run `make crds` and commit the result"
    )


def walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk(value)
    elif isinstance(node, list):
        for value in node:
            found += walk(value)
    return found


@pytest.mark.parametrize("name", sorted(definitions()))
def test_the_schemas_are_structural(name: str) -> None:
    schema = yaml.safe_load((CRDS / name).read_text())["spec"]["versions"][0]["schema"]
    for node in walk(schema["openAPIV3Schema"]):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), node
        assert node.get("additionalProperties") is not False, node


def test_the_minimum_above_the_maximum_is_refused_by_the_models_rule() -> None:
    rules = definitions()["streamprocessors.yaml"]["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]["properties"]["spec"]["properties"]["autoscaling"]["x-kubernetes-validations"]
    assert {"rule": "self.minReplicas <= self.maxReplicas", "message": rules[0]["message"]} in rules


def test_specs_read_kubernetes_camel_case() -> None:
    spec = StreamProcessorSpec.model_validate(
        {
            "processor": "orders",
            "image": "conveyor:dev",
            "kafka": {"bootstrapServers": "kafka:9092"},
            "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 6},
            "processingGuarantee": "exactly_once",
        }
    )
    assert spec.autoscaling == Autoscaling(enabled=True, min_replicas=1, max_replicas=6)
    assert spec.kafka == KafkaConnection(bootstrap_servers="kafka:9092")
    with pytest.raises(ValidationError):
        StreamProcessorSpec.model_validate({"processor": "billing", "image": "x", "kafka": {}})
