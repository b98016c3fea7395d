"""The worker's readiness contract: what ``GET /ready`` on a processor's metrics port answers.

The worker writes it (``conveyor.streams.readiness``) and the operator's rollouts read it
(``conveyor.operator.rollouts``) before rolling the next pod, so both use this one model::

    {"ready": false, "phase": "restoring", "restore": {"restored": 1200, "total": 5000},
     "partitions": 2}

``phase`` is ``starting`` (no assignment yet), ``restoring`` (reading changelogs),
``rebalancing`` (partitions being moved) or ``processing``, the only ready one;
``partitions`` counts the partitions of the processor's input topics it holds now, which may
be zero when there are more replicas than partitions (then it is ready with none). The answer
is 200 when ``ready``, else 503, with this body either way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Phase = Literal["starting", "restoring", "rebalancing", "processing"]


class RestoreProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Records of the active partitions' changelogs read back so far, of those to read.
    restored: int = 0
    total: int = 0


class WorkerReadiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    ready: bool
    phase: Phase
    restore: RestoreProgress = RestoreProgress()
    partitions: int = 0
