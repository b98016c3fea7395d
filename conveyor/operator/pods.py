"""What the operator reads of a processor's pods: whether each is Ready, and since when.

Stall detection, drain-time autoscaling and rollouts all judge pods by their Ready condition;
this is the one reading of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from conveyor.operator.kube import Object


def _ready_condition(pod: Object) -> Mapping[str, Any] | None:
    conditions: list[Mapping[str, Any]] = pod.get("status", {}).get("conditions", [])
    for condition in conditions:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return condition
    return None


def is_ready(pod: Object) -> bool:
    return _ready_condition(pod) is not None


def ready_since(pod: Object) -> datetime | None:
    """When the pod became Ready; None when it is not (or does not say when)."""
    condition = _ready_condition(pod)
    moment = None if condition is None else condition.get("lastTransitionTime")
    return datetime.fromisoformat(moment) if moment else None


def ready_names(pods: Iterable[Object]) -> set[str]:
    """The names of the pods that are Ready and not being deleted."""
    return {
        pod["metadata"]["name"]
        for pod in pods
        if pod["metadata"].get("deletionTimestamp") is None and is_ready(pod)
    }


def matching(pods: Iterable[Object], labels: Mapping[str, str]) -> list[Object]:
    """The pods carrying every one of ``labels``."""
    return [
        pod
        for pod in pods
        if all(pod["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
    ]
