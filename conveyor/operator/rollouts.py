"""Recovery-gated rollouts: a StreamProcessor's StatefulSet moves to a new pod template one
pod at a time, and the next pod rolls only once the last one has restored its tables.

A pod that restarts rebuilds its tables from their changelogs before it processes anything;
were several restarting at once, their partitions would all stand still together. So the
stable StatefulSet has ``updateStrategy: RollingUpdate`` with a ``partition`` the operator
owns and sends on every apply: the StatefulSet controller rolls only the pods at or above it.

The partition is derived from what is there on every pass, never remembered:

- the template the operator applies differs from the one the StatefulSet was last given
  (an annotation holds a hash of it): a new rollout starts at ``replicas - 1``;
- the controller has not yet seen the last spec: the partition stays where it is;
- otherwise ``updated_from`` is the lowest ordinal from which every existing pod runs
  ``status.updateRevision`` (its ``controller-revision-hash`` label); the partition goes one
  below it once every pod from there up is Ready and its worker's ``GET /ready`` (read from
  ``http://<podIP>:<metrics port>/ready``) says it processes, and stays at it until then.
  When ``/ready`` cannot be reached the pod's Ready condition decides.

While a pod is being rolled, ``Progressing`` names it and its restore's progress; when it
has been restoring longer than ``spec.state.restoreDeadlineSeconds``, ``Degraded`` says so
with reason ``RestoreTooSlow``. Deployments (memory store) and the canary keep Kubernetes'
own rolling update.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from conveyor.domain.readiness import WorkerReadiness
from conveyor.operator import children
from conveyor.operator import pods as pods_of
from conveyor.operator.kube import Kube, Object

log = logging.getLogger(__name__)

TEMPLATE_HASH = "conveyor.dev/template-hash"
REVISION_LABEL = "controller-revision-hash"
# A worker's /ready answers at once or not at all: a pod that cannot be asked is judged by
# its Ready condition rather than holding up the reconcile.
READY_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class PodState:
    name: str
    ordinal: int
    updated: bool
    pod_ready: bool
    age_seconds: float
    worker: WorkerReadiness | None

    @property
    def ready(self) -> bool:
        if not self.pod_ready:
            return False
        return self.worker is None or self.worker.ready

    def progress(self) -> str:
        worker = self.worker
        if worker is None:
            return "waiting for it to be ready"
        if worker.phase == "restoring":
            return f"restoring {worker.restore.restored} of {worker.restore.total} records"
        if worker.ready and not self.pod_ready:
            return "processing, waiting for its Ready condition"
        return worker.phase


@dataclass(frozen=True)
class Rollout:
    """Where the stable StatefulSet's rollout stands, and the partition to apply."""

    partition: int
    # The pod being rolled and how far it has come, while a rollout runs.
    message: str = ""
    # Set when that pod has restored for longer than the deadline.
    too_slow: str = ""


def template_hash(statefulset: Object) -> str:
    template = statefulset["spec"]["template"]
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def _ordinal(pod: Object, workload: str) -> int | None:
    suffix = pod["metadata"]["name"].removeprefix(f"{workload}-")
    return int(suffix) if suffix.isdigit() else None


def _age_seconds(pod: Object, now: datetime) -> float:
    created = pod["metadata"].get("creationTimestamp")
    if not created:
        return 0.0
    started = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return (now - started).total_seconds()


class Rollouts:
    """Plans the stable StatefulSet's partition; asks workers whether they are ready."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def worker_readiness(self, pod: Object) -> WorkerReadiness | None:
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            return None
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT_SECONDS)
            )
        url = f"http://{ip}:{children.METRICS_PORT}/ready"
        try:
            async with self._http.get(url) as answer:
                return WorkerReadiness.model_validate_json(await answer.read())
        except (aiohttp.ClientError, TimeoutError, ValidationError) as exc:
            log.debug("%s: /ready not answered: %r", url, exc)
            return None

    async def plan(self, owner: children.Owner, statefulset: Object, pods: list[Object]) -> Rollout:
        """Sets ``statefulset``'s partition (and its template's hash) for this apply, and says
        where the rollout stands; ``pods`` are the processor's pods as this reconcile listed
        them."""
        wanted_hash = template_hash(statefulset)
        statefulset["metadata"].setdefault("annotations", {})[TEMPLATE_HASH] = wanted_hash
        name = statefulset["metadata"]["name"]
        replicas = int(statefulset["spec"]["replicas"])
        live = await self.kube.get("apps/v1", "StatefulSet", owner.namespace, name)
        rollout = await self._decide(owner, live, wanted_hash, replicas, pods)
        statefulset["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": rollout.partition},
        }
        return rollout

    async def _decide(
        self,
        owner: children.Owner,
        live: Object | None,
        wanted_hash: str,
        replicas: int,
        pods: list[Object],
    ) -> Rollout:
        if live is None or replicas == 0:
            return Rollout(0)  # nothing runs yet: every pod starts on the template
        top = replicas - 1
        if live["metadata"].get("annotations", {}).get(TEMPLATE_HASH) != wanted_hash:
            return Rollout(top)
        strategy = live["spec"].get("updateStrategy", {}).get("rollingUpdate", {})
        current = min(int(strategy.get("partition", 0)), top)
        observed = live.get("status", {})
        if observed.get("observedGeneration", 0) < live["metadata"].get("generation", 0):
            return Rollout(current)
        revision = observed.get("updateRevision")
        name = live["metadata"]["name"]
        states = await self._states(owner, name, observed, replicas, pods)
        updated_from = replicas
        for ordinal in range(top, -1, -1):
            pod = states.get(ordinal)
            if pod is not None and not pod.updated:
                break
            updated_from = ordinal
        # The first pod, from updated_from up, that is not there or not ready yet.
        waiting = next(
            (
                ordinal
                for ordinal in range(updated_from, replicas)
                if ordinal not in states or not states[ordinal].ready
            ),
            None,
        )
        if waiting is None:
            return Rollout(max(updated_from - 1, 0))
        verb = "rolling" if observed.get("currentRevision") != revision else "starting"
        updated = sum(1 for pod in states.values() if pod.updated)
        head = f"{verb} {name}-{waiting} ({updated} of {replicas} pods updated)"
        pod = states.get(waiting)
        if pod is None:
            return Rollout(updated_from, f"{head}: being created")
        deadline = owner.spec.state.restore_deadline_seconds
        too_slow = ""
        if pod.age_seconds > deadline:
            too_slow = (
                f"{pod.name} is not ready after restoreDeadlineSeconds ({deadline} s): "
                f"{pod.progress()}"
            )
        return Rollout(updated_from, f"{head}: {pod.progress()}", too_slow)

    async def _states(
        self,
        owner: children.Owner,
        workload: str,
        observed: Object,
        replicas: int,
        pods: list[Object],
    ) -> dict[int, PodState]:
        revision = observed.get("updateRevision")
        rolling = observed.get("currentRevision") != revision
        now = datetime.now(UTC)
        listed: dict[int, Object] = {}
        for pod in pods_of.matching(pods, children.selector(owner, children.STABLE)):
            ordinal = _ordinal(pod, workload)
            if ordinal is None or ordinal >= replicas or pod["metadata"].get("deletionTimestamp"):
                continue
            listed[ordinal] = pod

        async def state(ordinal: int, pod: Object) -> PodState:
            updated = pod["metadata"].get("labels", {}).get(REVISION_LABEL) == revision
            pod_ready = pods_of.is_ready(pod)
            # Asked while a rollout waits on it, or to tell how far a pod not Ready has come;
            # a Ready pod outside a rollout is judged by its probe, which asks the same.
            asked = updated and (rolling or not pod_ready)
            worker = await self.worker_readiness(pod) if asked else None
            name = pod["metadata"]["name"]
            return PodState(name, ordinal, updated, pod_ready, _age_seconds(pod, now), worker)

        states = await asyncio.gather(*(state(n, pod) for n, pod in listed.items()))
        return {pod.ordinal: pod for pod in states}
