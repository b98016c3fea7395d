"""Lag-based autoscaling decisions: pure arithmetic over lag readings, no I/O here.

Scale up at once when the lag asks for more replicas; scale down only when every
recommendation within the stabilization window asked for fewer (as Kubernetes' HPA does), so
a lag that dips for a moment does not shrink the group and trigger two rebalances.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from conveyor.domain.resources import Autoscaling


def ceiling(autoscaling: Autoscaling, partitions: int) -> int:
    """The most replicas worth running: a replica beyond the partition count gets none."""
    return max(1, min(autoscaling.max_replicas, partitions))


def recommend(autoscaling: Autoscaling, lag: int, partitions: int) -> int:
    wanted = math.ceil(lag / autoscaling.target_lag_per_replica)
    return min(max(wanted, autoscaling.min_replicas), ceiling(autoscaling, partitions))


@dataclass
class Stabilizer:
    """Recommendations of one StreamProcessor over its stabilization window."""

    observed: deque[tuple[float, int]] = field(default_factory=deque)
    since: float | None = None

    def decide(
        self, autoscaling: Autoscaling, current: int, recommendation: int, now: float
    ) -> int:
        window = autoscaling.scale_down_stabilization_seconds
        if self.since is None:
            self.since = now
        self.observed.append((now, recommendation))
        while self.observed and self.observed[0][0] < now - window:
            self.observed.popleft()
        if recommendation >= current:
            return recommendation
        # Not a whole window watched yet (e.g. the operator just started): keep what runs.
        if now - self.since < window:
            return current
        return min(current, max(value for _, value in self.observed))
