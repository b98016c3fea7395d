"""Status conditions, as Kubernetes conventions want them: pure functions, no I/O here.

A condition's lastTransitionTime moves only when its status changes, so `kubectl describe`
tells how long something has been true.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def merge(
    previous: Iterable[Mapping[str, Any]],
    current: Iterable[Condition],
    generation: int | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The conditions to write: ``current``, with the transition times of unchanged ones kept."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {condition.get("type"): condition for condition in previous}
    merged = []
    for condition in current:
        old = before.get(condition.type)
        kept = old is not None and old.get("status") == condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": old["lastTransitionTime"] if kept and old else moment,
                "observedGeneration": generation,
            }
        )
    return merged


def truth(value: bool) -> ConditionStatus:
    return "True" if value else "False"
