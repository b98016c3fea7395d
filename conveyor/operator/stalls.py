"""Stall detection and healing: partitions whose consumer is there but does not move.

A pod can be Ready, in its consumer group and holding partitions, and still process nothing:
a deadlock, a hung call without a timeout, a frozen process whose session has not expired.
Kafka's lag alone cannot tell that from a burst of load. What tells it is the committed
offset: a partition is **stalled** when it has lag and its committed offset has not moved
for ``spec.stallDetection.stallSeconds`` while the pod that owns it (the group member whose
``group.instance.id`` is the pod's name) is Ready. A pod that is not Ready is starting or
restoring, which the rollout machinery watches, so its partitions' clocks start over.

The operator remembers, per partition, the offset it last saw and since when; that memory
is in the process (a restarted operator starts its clocks again, which only delays a
report). What must outlive the operator is the restart budget: the times of its stall
restarts are kept in the status (``stallRestarts``), so ``maxRestartsPerHour`` holds across
operator restarts.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from conveyor.domain.resources import Condition, StallDetection, StreamProcessorStatus
from conveyor.infra.group_progress import PartitionProgress
from conveyor.operator import metrics
from conveyor.operator import pods as pods_of
from conveyor.operator.conditions import Observation
from conveyor.operator.kinds import POD
from conveyor.operator.kube import Kube, Object

RESTART_WINDOW = timedelta(hours=1)
# Posts a Kubernetes event (type, reason, message) about the resource being reconciled.
EventPoster = Callable[[str, str, str], None]
PartitionKey = tuple[str, int]


@dataclass
class _Clock:
    """Since when one partition's committed offset has stood where it is, with lag, under
    the same Ready owner."""

    committed: int
    owner: str | None
    since: float


@dataclass
class StallClocks:
    """The clocks of one StreamProcessor's partitions, and what was last reported."""

    clocks: dict[PartitionKey, _Clock] = field(default_factory=dict)
    reported: tuple[tuple[str, ...], bool] = ((), False)
    # Partitions whose owner was restarted, with the committed offset they stood at then:
    # still stalled (the pod is coming back) until that offset moves or the lag is gone.
    healing: dict[PartitionKey, int] = field(default_factory=dict)
    # What was done about them, said again while they heal.
    healing_action: str = ""

    def stalled(
        self,
        progress: Iterable[PartitionProgress],
        ready_pods: set[str],
        stall_seconds: float,
        now: float,
    ) -> list[PartitionProgress]:
        """The partitions stalled now; every clock moves to what ``progress`` says."""
        found = []
        seen = set()
        for partition in progress:
            key = (partition.topic, partition.partition)
            seen.add(key)
            clock = self.clocks.get(key)
            counting = partition.lag > 0 and partition.owner in ready_pods
            if (
                clock is None
                or not counting
                or clock.committed != partition.committed
                or clock.owner != partition.owner
            ):
                self.clocks[key] = _Clock(partition.committed, partition.owner, now)
                continue
            if now - clock.since >= stall_seconds:
                found.append(partition)
        for gone in set(self.clocks) - seen:
            del self.clocks[gone]
        return sorted(found, key=lambda partition: (partition.topic, partition.partition))

    def restarted(
        self, owners: Iterable[str], stalled: Iterable[PartitionProgress], now: float
    ) -> None:
        """The pods ``owners`` were restarted: their partitions get a fresh clock, and heal."""
        restarted = set(owners)
        for clock in self.clocks.values():
            if clock.owner in restarted:
                clock.since = now
        for partition in stalled:
            if partition.owner in restarted:
                self.healing[(partition.topic, partition.partition)] = partition.committed

    def still_healing(
        self, progress: Mapping[PartitionKey, PartitionProgress], stalled: list[PartitionProgress]
    ) -> list[PartitionProgress]:
        """Restarted partitions that have not moved since, and are not stalled anew."""
        for key, committed in list(self.healing.items()):
            now = progress.get(key)
            if now is None or now.lag == 0 or now.committed != committed:
                del self.healing[key]
        anew = {(partition.topic, partition.partition) for partition in stalled}
        return [progress[key] for key in sorted(self.healing) if key not in anew]


def recent_restarts(restarts: Iterable[datetime], now: datetime) -> list[datetime]:
    """The restart times within the rolling hour before ``now``, oldest first."""
    return sorted(moment for moment in restarts if now - moment < RESTART_WINDOW)


def _listed(partitions: Iterable[PartitionProgress]) -> str:
    return ", ".join(
        f"{partition.name} owned by {partition.owner} (lag {partition.lag})"
        for partition in partitions
    )


@dataclass(frozen=True)
class StallReport:
    condition: Condition
    # The restart times to keep in the status (None: none in the last hour).
    restarts: list[datetime] | None


@dataclass
class StallDetector:
    """Finds stalled partitions of each StreamProcessor and restarts their owners."""

    clocks: dict[str, StallClocks] = field(default_factory=dict)
    # The restarts this process made, per resource: a reconcile can work from a copy of the
    # resource older than the status that recorded the latest one.
    restarts: dict[str, list[datetime]] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic

    async def check(
        self,
        kube: Kube,
        where: tuple[str, str, str, str],
        policy: StallDetection,
        progress: Mapping[PartitionKey, PartitionProgress] | None,
        pods: list[Object],
        previous: StreamProcessorStatus,
        observation: Observation,
        post_event: EventPoster,
    ) -> StallReport:
        """``where`` is (uid, namespace, name, processor) of the StreamProcessor."""
        uid, namespace, name, processor = where
        # Both records, each time as often as the record holding it more often has it (two
        # pods restarted in one reconcile share a time).
        known = Counter(previous.stall_restarts or ()) | Counter(self.restarts.get(uid, ()))
        restarts = recent_restarts(known.elements(), observation.at)
        metrics.STALL_RESTARTS.labels(namespace, name, processor)  # a series from the start
        if progress is None:
            metrics.STALLED_PARTITIONS.labels(namespace, name, processor).set(0)
            condition = observation.condition(
                "Stalled", "Unknown", "KafkaUnreachable", "committed offsets cannot be read"
            )
            return StallReport(condition, restarts or None)
        clocks = self.clocks.setdefault(uid, StallClocks())
        now = self.monotonic()
        stalled = clocks.stalled(
            progress.values(), pods_of.ready_names(pods), policy.stall_seconds, now
        )
        healing = clocks.still_healing(progress, stalled)
        metrics.STALLED_PARTITIONS.labels(namespace, name, processor).set(
            len(stalled) + len(healing)
        )
        if not stalled and not healing:
            clocks.reported = ((), False)
            return StallReport(
                observation.condition("Stalled", "False", "PartitionsProgressing"),
                restarts or None,
            )
        said = []
        if stalled:
            said.append(
                f"{len(stalled)} partition(s) with lag and no committed progress for "
                f"{policy.stall_seconds} s while their owner is Ready: {_listed(stalled)}"
            )
            action, restarted = await self._remedy(
                kube, where, policy, stalled, restarts, observation
            )
            self.restarts[uid] = list(restarts)
            clocks.restarted(restarted, stalled, now)
            if restarted:
                clocks.healing_action = action
            said.append(action)
            # An event when what is stalled, or whether the budget is spent, changes; and for
            # every restart, which is a decision of its own.
            spent = len(restarts) >= policy.max_restarts_per_hour and not restarted
            reported = (tuple(partition.name for partition in stalled), spent)
            message = "; ".join(said)
            if reported != clocks.reported or restarted:
                post_event("Warning", "Stalled", message)
                if spent and policy.remediation == "restart":
                    post_event("Warning", "StallRestartBudgetSpent", message)
            clocks.reported = reported
        if healing:
            said.append(
                f"waiting for {_listed(healing)} to move again after: {clocks.healing_action}"
            )
        condition = observation.condition("Stalled", "True", "PartitionsStalled", "; ".join(said))
        return StallReport(condition, restarts or None)

    async def _remedy(
        self,
        kube: Kube,
        where: tuple[str, str, str, str],
        policy: StallDetection,
        stalled: list[PartitionProgress],
        restarts: list[datetime],
        observation: Observation,
    ) -> tuple[str, list[str]]:
        """Restarts the owners of ``stalled`` within the budget (adding to ``restarts``): what
        was done, and which pods were restarted."""
        _, namespace, name, processor = where
        budget = policy.max_restarts_per_hour
        if policy.remediation == "none":
            return "remediation is none: reported only", []
        if len(restarts) >= budget:
            return (
                f"restart budget spent ({len(restarts)} of {budget} restarts in the last "
                "hour): reported only, not restarted"
            ), []
        owners = sorted({partition.owner for partition in stalled if partition.owner})
        # One restart per pod, as long as the budget lasts.
        restarted = owners[: budget - len(restarts)]
        for pod in restarted:
            await kube.delete(POD.api_version, POD.kind, namespace, pod)
            restarts.append(observation.at)
            metrics.STALL_RESTARTS.labels(namespace, name, processor).inc()
        return (
            f"restarted {', '.join(restarted)} ({len(restarts)} of {budget} restarts in the "
            "last hour)"
        ), restarted

    def forget(self, uid: str, labels: tuple[str, str, str]) -> None:
        self.clocks.pop(uid, None)
        self.restarts.pop(uid, None)
        for series in (metrics.STALLED_PARTITIONS, metrics.STALL_RESTARTS):
            with contextlib.suppress(KeyError):
                series.remove(*labels)
