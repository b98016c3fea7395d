"""CustomResourceDefinitions generated from the models in ``conveyor.domain.resources``.

Pydantic's JSON Schema is turned into the structural OpenAPI v3 schema Kubernetes demands:
references inlined, ``anyOf [X, null]`` made ``nullable``, no titles, no
``additionalProperties: false`` (Kubernetes prunes unknown fields itself), and free-form
maps marked ``x-kubernetes-preserve-unknown-fields``. ``make crds`` writes them to ``crds/``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from conveyor.domain.resources import (
    StreamProcessorSpec,
    StreamProcessorStatus,
    TopicResourceSpec,
    TopicStatus,
)
from conveyor.operator.kinds import STREAM_PROCESSOR, TOPIC, Kind

_DROPPED = ("title", "$defs")


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema in the form a CRD's openAPIV3Schema accepts."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.get("$defs", {})

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return convert(merged)
        options = node.get("anyOf")
        if options is not None:
            present = [option for option in options if option.get("type") != "null"]
            if len(present) == 1 and len(present) < len(options):
                rest = {k: v for k, v in node.items() if k != "anyOf"}
                converted = convert({**present[0], **rest})
                converted["nullable"] = True
                return converted
        result = {key: convert(value) for key, value in node.items() if key not in _DROPPED}
        if isinstance(result.get("description"), str):
            result["description"] = " ".join(result["description"].split())
        if result.get("additionalProperties") is False:
            del result["additionalProperties"]
        if result.get("x-kubernetes-preserve-unknown-fields"):
            result.pop("additionalProperties", None)
            result.setdefault("type", "object")
        if result.get("default") is None and "default" in result:
            del result["default"]
        return result

    converted: dict[str, Any] = convert(schema)
    return converted


def _definition(
    *,
    kind: Kind,
    short_name: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, str]],
    scale: bool,
) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{kind.group}"},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [short_name],
                "categories": ["conveyor"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        *columns,
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        },
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": structural(spec),
                                "status": structural(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def definitions() -> dict[str, dict[str, Any]]:
    """Every CRD, by the file name it is written to."""
    return {
        "streamprocessors.yaml": _definition(
            kind=STREAM_PROCESSOR,
            short_name="sp",
            spec=StreamProcessorSpec,
            status=StreamProcessorStatus,
            columns=[
                {"name": "Processor", "type": "string", "jsonPath": ".spec.processor"},
                {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
                {"name": "Lag", "type": "integer", "jsonPath": ".status.consumerLag.total"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            ],
            scale=True,
        ),
        "topics.yaml": _definition(
            kind=TOPIC,
            short_name="tp",
            spec=TopicResourceSpec,
            status=TopicStatus,
            columns=[
                {"name": "Topic", "type": "string", "jsonPath": ".spec.topicName"},
                {"name": "Partitions", "type": "integer", "jsonPath": ".status.partitions"},
                {
                    "name": "Ready",
                    "type": "string",
                    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                },
            ],
            scale=False,
        ),
    }


HEADER = "# Generated from conveyor/domain/resources.py by `make crds`; do not edit.\n"


def render(definition: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(definition, sort_keys=False, width=100)


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, definition in definitions().items():
        path = directory / name
        path.write_text(render(definition))
        written.append(path)
    return written
