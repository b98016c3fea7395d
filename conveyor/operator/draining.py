"""Autoscaling by time to drain: replicas enough to clear the lag within a target time.

``spec.autoscaling.targetDrainSeconds`` asks for the lag to be gone that many seconds from
now at the rate the processor is measured to process. The rate is the group's committed
offsets, summed over its input partitions, over the last observations (the operator's
beats), divided by the replicas processing (Ready pods); so

    replicas = ceil(lag / (rate per replica x targetDrainSeconds))

within minReplicas, maxReplicas and the partition count. A lag of 10 000 records, a measured
200 records/s per replica and a target of 20 s ask for ceil(10 000 / 4 000) = 3 replicas.

Two things a new replica costs are weighed: it restores its tables before it processes (the
last restore's measured time: a pod's container start to its Ready), and it rebalances the
group. A scale-up is skipped when the current replicas drain the lag sooner than the restore
plus the drain with more replicas would; no scale-down happens while a replica restores
(running but not Ready), since the rate measured then is not what the replicas can do. Scale-
down waits for the stabilization window as the lag mode does (``scaling.Stabilizer``).

The decision is pure (``decide``); the measuring (``RateMeter``, ``restore_seconds``) reads
what each reconcile already has: the group's progress and the pods.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from conveyor.domain.resources import Autoscaling
from conveyor.infra.group_progress import PartitionProgress
from conveyor.operator import metrics
from conveyor.operator import pods as pods_of
from conveyor.operator.kube import Object
from conveyor.operator.scaling import ceiling

# The rate is measured over the observations of this many seconds...
RATE_WINDOW_SECONDS = 30.0
# ... and not before they span this long: one beat's delta is too coarse a measure.
MIN_RATE_SPAN_SECONDS = 10.0


@dataclass
class RateMeter:
    """Records per second a group commits, from its committed offsets over the last beats."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)
    partitions: frozenset[tuple[str, int]] = frozenset()

    def observe(self, progress: Iterable[PartitionProgress], now: float) -> None:
        seen = list(progress)
        partitions = frozenset((item.topic, item.partition) for item in seen)
        if partitions != self.partitions:
            # Partitions added (or a topic made): the sums before are not comparable.
            self.samples.clear()
            self.partitions = partitions
        self.samples.append((now, sum(item.committed for item in seen)))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_SECONDS:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Records per second over the window; None until the window spans long enough."""
        if len(self.samples) < 2:
            return None
        (first_at, first), (last_at, last) = self.samples[0], self.samples[-1]
        if last_at - first_at < MIN_RATE_SPAN_SECONDS:
            return None
        return max(0, last - first) / (last_at - first_at)


def _started(pod: Object) -> datetime | None:
    for container in pod.get("status", {}).get("containerStatuses", []):
        started = container.get("state", {}).get("running", {}).get("startedAt")
        if started:
            return datetime.fromisoformat(started)
    return None


def restore_seconds(pods: Iterable[Object]) -> float:
    """The last restore's measured duration: from its container's start to Ready, for the pod
    that became Ready last (0 when no pod tells)."""
    measured = []
    for pod in pods:
        ready, started = pods_of.ready_since(pod), _started(pod)
        if ready is not None and started is not None:
            measured.append((ready, max(0.0, (ready - started).total_seconds())))
    return max(measured)[1] if measured else 0.0


def restoring(pods: Iterable[Object]) -> int:
    """Pods running but not Ready: starting, or restoring their tables."""
    return sum(
        1
        for pod in pods
        if pod.get("status", {}).get("phase") == "Running"
        and pod["metadata"].get("deletionTimestamp") is None
        and pods_of.ready_since(pod) is None
    )


@dataclass(frozen=True)
class DrainInputs:
    lag: int
    # Records per second per replica processing; None: not measured yet.
    rate_per_replica: float | None
    current: int
    partitions: int
    restoring: int = 0
    expected_restore_seconds: float = 0.0


@dataclass(frozen=True)
class DrainDecision:
    # None: no drain-time decision (nothing measured); the replicas stay.
    replicas: int | None
    reason: str


def decide(policy: Autoscaling, inputs: DrainInputs) -> DrainDecision:
    """The replicas that drain ``inputs.lag`` within ``policy.target_drain_seconds``."""
    target = policy.target_drain_seconds
    assert target is not None
    rate, current, lag = inputs.rate_per_replica, inputs.current, inputs.lag
    if rate is None:
        return DrainDecision(None, "no processing rate measured yet: no drain-time decision")
    if rate <= 0 and lag > 0:
        return DrainDecision(
            None, f"lag {lag} and nothing committed: no rate to decide on (see Stalled)"
        )
    top = ceiling(policy, inputs.partitions)
    needed = math.ceil(lag / (rate * target)) if lag else 0
    wanted = min(max(needed, policy.min_replicas), top)
    said = (
        f"lag {lag}, rate {rate:.1f} records/s per replica, target drain {target} s: "
        f"{needed} replica(s) needed"
    )
    if wanted < current and inputs.restoring:
        return DrainDecision(
            current,
            f"{said}; not scaling down while {inputs.restoring} replica(s) restore",
        )
    if wanted > current:
        draining_now = lag / (rate * current) if current else math.inf
        restore = inputs.expected_restore_seconds
        draining_more = restore + lag / (rate * wanted)
        if draining_now <= draining_more:
            return DrainDecision(
                current,
                f"{said}; {current} replica(s) drain it in {draining_now:.0f} s, no later "
                f"than {wanted} would after their restore ({restore:.0f} s + "
                f"{draining_more - restore:.0f} s): not scaling up",
            )
        return DrainDecision(
            wanted,
            f"{said}; expected restore {restore:.0f} s, then {draining_more - restore:.0f} s "
            f"to drain with {wanted} instead of {draining_now:.0f} s with {current} "
            f"(at most {top}: maxReplicas {policy.max_replicas}, {inputs.partitions} partitions)",
        )
    return DrainDecision(
        wanted,
        f"{said} (at least minReplicas {policy.min_replicas}, at most {top})",
    )


def measure(
    meter: RateMeter,
    labels: tuple[str, str, str],
    progress: dict[tuple[str, int], PartitionProgress],
    pods: list[Object],
    current: int,
    partitions: int,
    now: float,
) -> DrainInputs:
    """One observation of the group and its pods: the inputs of ``decide``, also exported as
    metrics under ``labels`` (namespace, name, processor)."""
    meter.observe(progress.values(), now)
    lag = sum(item.lag for item in progress.values())
    group_rate = meter.rate()
    per_replica = None
    if group_rate is not None:
        per_replica = group_rate / max(1, len(pods_of.ready_names(pods)))
        metrics.PROCESSING_RATE.labels(*labels).set(per_replica)
        if group_rate > 0:
            metrics.EXPECTED_DRAIN_SECONDS.labels(*labels).set(lag / group_rate)
    expected_restore = restore_seconds(pods)
    metrics.EXPECTED_RESTORE_SECONDS.labels(*labels).set(expected_restore)
    return DrainInputs(lag, per_replica, current, partitions, restoring(pods), expected_restore)


def forget(labels: tuple[str, str, str]) -> None:
    for gauge in (
        metrics.PROCESSING_RATE,
        metrics.EXPECTED_DRAIN_SECONDS,
        metrics.EXPECTED_RESTORE_SECONDS,
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
