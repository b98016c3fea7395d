"""Status conditions, as Kubernetes conventions want them: pure functions, no I/O here.

A condition's lastTransitionTime moves only when its status changes, so `kubectl describe`
tells how long something has been true. Conditions are the ``Condition`` model of
``conveyor.domain.resources``, the one the CRDs' status schemas are generated from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from conveyor.domain.resources import Condition, ConditionStatus, ConditionType

Status = TypeVar("Status", bound=BaseModel)


@dataclass(frozen=True)
class Observation:
    """One look of a reconciler at a resource: when, and at which generation of its spec.

    Kubernetes keeps times to the second, so the moment is truncated here, once: a time
    written and read back is the same time.
    """

    at: datetime
    generation: int | None

    @classmethod
    def now(cls, generation: int | None) -> Observation:
        return cls(datetime.now(UTC).replace(microsecond=0), generation)

    def condition(
        self, type_: ConditionType, status: ConditionStatus, reason: str, message: str = ""
    ) -> Condition:
        """The condition as observed now (``settle`` keeps an earlier transition time)."""
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=self.at,
            observed_generation=self.generation,
        )


def settle(previous: Iterable[Condition], current: Iterable[Condition]) -> list[Condition]:
    """The conditions to write: ``current``, each keeping the transition time of its previous
    self while its status held (reason and message may change without a transition)."""
    before = {condition.type: condition for condition in previous}
    settled = []
    for condition in current:
        old = before.get(condition.type)
        if old is not None and old.status == condition.status:
            condition = condition.model_copy(
                update={"last_transition_time": old.last_transition_time}
            )
        settled.append(condition)
    return settled


def truth(value: bool) -> ConditionStatus:
    return "True" if value else "False"


def previous_status(body: Mapping[str, Any], model: type[Status]) -> Status:
    """The status the resource holds, read through its model; empty when it holds none, or
    one the model refuses (written by hand), which the reconcile then replaces."""
    try:
        return model.model_validate(body.get("status") or {})
    except ValidationError:
        return model()
