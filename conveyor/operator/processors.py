"""Reconciling a StreamProcessor: its children, its replica count, its status.

Level-based: each pass reads what is (the resource, its Kafka lag, its workloads) and makes
what should be, whatever event woke it. Kopf calls it on every change of the resource or of
one of its children, and on a steady beat for lag.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.domain.processors import PROCESSORS
from conveyor.domain.resources import (
    Condition,
    ConsumerLag,
    Phase,
    StreamProcessorSpec,
    StreamProcessorStatus,
)
from conveyor.domain.topics import consumer_group
from conveyor.infra.errors import InfraError
from conveyor.infra.group_progress import PartitionProgress, group_progress
from conveyor.infra.groups import remove_static_members
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity
from conveyor.operator import children, draining, metrics
from conveyor.operator.conditions import Observation, previous_status, settle, truth
from conveyor.operator.errors import KubernetesError
from conveyor.operator.kinds import OWNED_KINDS, POD, SERVICE_MONITOR, STREAM_PROCESSOR
from conveyor.operator.kube import Kube, Object
from conveyor.operator.rollouts import Rollout, Rollouts
from conveyor.operator.scaling import Stabilizer, ceiling, recommend
from conveyor.operator.secrecy import SecretValues
from conveyor.operator.secret_access import refused_secrets
from conveyor.operator.stalls import StallDetector

# As a Deployment's default progressDeadlineSeconds: a rollout this slow is reported Degraded.
PROGRESS_DEADLINE_SECONDS = 600
# Status fields that record when something happened: a reconcile working from a copy of the
# resource older than the last status write leaves them as they are stored.
HISTORY_FIELDS = ("lastScaleTime", "stallRestarts")
# Posts a Kubernetes event (type, reason, message) about the resource being reconciled.
EventPoster = Callable[[str, str, str], None]


@dataclass(frozen=True)
class KafkaView:
    """What Kafka says about a processor's group, or why it could not say."""

    lag: dict[str, int] | None = None
    partitions: int = 0
    missing_topics: tuple[str, ...] = ()
    problem: str | None = None
    # Per input partition: committed and end offsets and the owning member.
    progress: dict[tuple[str, int], PartitionProgress] | None = None


@dataclass
class ScaleDecision:
    replicas: int
    direction: str | None = None
    reason: str = ""


@dataclass
class ProcessorReconciler:
    kube: Kube
    # The operator's own Kafka login, used for every processor's lag whichever brokers its
    # spec names: the processor's pods keep their credentials to themselves.
    kafka_security: KafkaSecurity = PLAINTEXT
    stabilizers: dict[str, Stabilizer] = field(default_factory=dict)
    secret_values: SecretValues = field(default_factory=SecretValues)
    stalls: StallDetector = field(default_factory=StallDetector)
    rate_meters: dict[str, draining.RateMeter] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))
    rollouts: Rollouts = field(init=False)

    def __post_init__(self) -> None:
        self.rollouts = Rollouts(self.kube)

    async def reconcile(self, body: Mapping[str, Any], post_event: EventPoster) -> None:
        metadata = body["metadata"]
        name, namespace, uid = metadata["name"], metadata["namespace"], metadata["uid"]
        previous = previous_status(body, StreamProcessorStatus)
        observation = Observation.now(metadata.get("generation"))
        spec = StreamProcessorSpec.model_validate(body["spec"])
        owner = children.Owner(name, namespace, uid, spec)
        processor = spec.processor

        not_allowed = await refused_secrets(self.kube, namespace, spec)
        if not_allowed is not None:
            # Nothing is applied: the workload keeps whatever Secrets it was last given.
            refused = _refused(observation, previous, spec, "SecretNotAllowed", not_allowed)
            await self.kube.write_status(body, refused, kept=HISTORY_FIELDS)
            post_event("Warning", "SecretNotAllowed", not_allowed)
            return

        kafka = await self._read_kafka(owner)
        pods = await self.kube.list(POD.api_version, POD.kind, namespace, _pod_selector(owner))
        stall = await self.stalls.check(
            self.kube,
            (uid, namespace, name, processor),
            spec.stall_detection,
            kafka.progress,
            pods,
            previous,
            observation,
            post_event,
        )
        decision = self._decide_replicas(owner, kafka, pods)
        if decision.direction is not None:
            await self.kube.scale(
                STREAM_PROCESSOR.api_version,
                STREAM_PROCESSOR.kind,
                namespace,
                name,
                decision.replicas,
            )
            metrics.SCALE_DECISIONS.labels(namespace, name, processor, decision.direction).inc()
            post_event("Normal", f"Scaled{decision.direction.title()}", decision.reason)
        wanted_replicas = 0 if spec.suspend else decision.replicas
        await self._release_departed(owner, kafka, pods, wanted_replicas, post_event)
        metrics.REPLICAS.labels(namespace, name, processor).set(wanted_replicas)
        if kafka.lag is not None:
            metrics.CONSUMER_LAG.labels(namespace, name, processor).set(sum(kafka.lag.values()))

        wanted = children.owned_objects(owner, decision.replicas)
        # The stable StatefulSet rolls one pod at a time, each once the last has restored.
        rollout = Rollout(0)
        stable = children.workload_name(owner, children.STABLE)
        for item in wanted:
            if item["kind"] == "StatefulSet" and item["metadata"]["name"] == stable:
                rollout = await self.rollouts.plan(owner, item, pods)
        monitored = await self.kube.serves(SERVICE_MONITOR.api_version, SERVICE_MONITOR.kind)
        if monitored:
            wanted.append(children.service_monitor(owner))
        try:
            applied = [await self.kube.apply(item) for item in wanted]
            await self._prune(owner, wanted, monitored)
        except KubernetesError as exc:
            if exc.status not in (400, 422):
                raise
            # The API server refused what the spec asks for (e.g. malformed resources):
            # nothing more is applied until the spec changes.
            refused = _refused(observation, previous, spec, "InvalidSpec", str(exc))
            await self.kube.write_status(body, refused, kept=HISTORY_FIELDS)
            post_event("Warning", "InvalidSpec", str(exc))
            return
        [workload] = [
            item
            for item in applied
            if item["kind"] in ("StatefulSet", "Deployment") and item["metadata"]["name"] == stable
        ]
        scaled = decision.direction is not None
        status = _status(
            observation, previous, workload, kafka, decision.replicas, owner, scaled, rollout
        )
        status = status.model_copy(
            update={
                "conditions": [*status.conditions, *settle(previous.conditions, [stall.condition])],
                "stall_restarts": stall.restarts,
            }
        )
        await self.kube.write_status(body, status, kept=HISTORY_FIELDS)

    async def _read_kafka(self, owner: children.Owner) -> KafkaView:
        processor = owner.spec.processor
        inputs = [topic.name for topic in PROCESSORS[processor].inputs]
        # Not a failed reconcile when Kafka cannot be read (the children are still applied),
        # but no lag, no autoscaling and TopicsReady=Unknown until Kafka answers again.
        try:
            bootstrap, from_secret = await self._bootstrap_servers(owner)
        except KafkaSecretUnusable as exc:
            return self._unreadable(owner, str(exc))
        try:
            # Given the inputs, the progress has an entry for every partition they have: it also
            # tells which exist and how many partitions each has.
            progress = await group_progress(
                bootstrap, consumer_group(processor), inputs, security=self.kafka_security
            )
        except InfraError as exc:
            if from_secret is None:
                return self._unreadable(owner, str(exc))
            # The error quotes the address, which came from a Secret: say where it is instead.
            cause = type(exc.__cause__ or exc).__name__
            return self._unreadable(
                owner,
                f"no Kafka broker answered at the address in {from_secret} ({cause}); "
                "check that it lists the brokers as host:port and that they are reachable",
            )
        per_topic: dict[str, int] = dict.fromkeys(inputs, 0)
        partitions: dict[str, int] = {}
        for (topic, _), partition in progress.items():
            per_topic[topic] += partition.lag
            partitions[topic] = partitions.get(topic, 0) + 1
        return KafkaView(
            lag=per_topic,
            partitions=max(partitions.values(), default=0),
            missing_topics=tuple(name for name in inputs if name not in partitions),
            progress=progress,
        )

    async def _release_departed(
        self,
        owner: children.Owner,
        kafka: KafkaView,
        pods: list[Object],
        replicas: int,
        post_event: EventPoster,
    ) -> None:
        """The static members of pods scaled away, out of the group now.

        A StatefulSet pod's name is its ``group.instance.id``, and a static member never
        leaves its group by itself: the partitions of a pod scaled away would wait,
        unprocessed, until its session expired. Only members at or past their workload's
        replica count whose pod is gone are removed: a pod being replaced within the count
        keeps its membership, which is what brings it back without a rebalance.
        """
        if kafka.progress is None:
            return
        suspended = owner.spec.suspend
        kept = {children.workload_name(owner, children.STABLE): 0 if suspended else replicas}
        if owner.spec.canary is not None and not suspended:
            kept[children.workload_name(owner, children.CANARY)] = owner.spec.canary.replicas
        present = {pod["metadata"]["name"] for pod in pods}
        departed = sorted(
            {
                member
                for partition in kafka.progress.values()
                if (member := partition.owner) is not None
                and member not in present
                and _scaled_away(owner, member, kept)
            }
        )
        if not departed:
            return
        group = consumer_group(owner.spec.processor)
        try:
            bootstrap, _ = await self._bootstrap_servers(owner)
            await remove_static_members(bootstrap, group, departed, security=self.kafka_security)
        except (InfraError, KafkaSecretUnusable) as exc:
            self.log.warning(
                "%s/%s: %s not removed: %s", owner.namespace, owner.name, departed, exc
            )
            return
        post_event(
            "Normal",
            "MembersReleased",
            f"removed {', '.join(departed)} from consumer group {group}: their pods were scaled "
            "away, so their partitions move to the other replicas now rather than after the "
            "session timeout",
        )

    def _unreadable(self, owner: children.Owner, problem: str) -> KafkaView:
        self.log.warning("%s/%s: Kafka not readable: %s", owner.namespace, owner.name, problem)
        return KafkaView(problem=problem)

    async def _bootstrap_servers(self, owner: children.Owner) -> tuple[str, str | None]:
        """Kafka's address, and where it came from when that is a Secret ("Secret ns/name key
        K"), which is then all a message may say of it.

        Only the one Secret the spec names is read, by name, in the resource's own namespace:
        the operator may not list Secrets, and a name cannot leave the namespace.
        """
        kafka = owner.spec.kafka
        if kafka.bootstrap_servers:
            return kafka.bootstrap_servers, None
        assert kafka.secret_ref is not None
        where = f"Secret {owner.namespace}/{kafka.secret_ref.name} key {kafka.secret_ref.key}"
        secret = await self.kube.get("v1", "Secret", owner.namespace, kafka.secret_ref.name)
        if secret is None:
            raise KafkaSecretUnusable(
                f"Secret {owner.namespace}/{kafka.secret_ref.name} not found; create it with "
                f"the Kafka bootstrap servers under the key {kafka.secret_ref.key}"
            )
        encoded = secret.get("data", {}).get(kafka.secret_ref.key)
        if encoded is None:
            raise KafkaSecretUnusable(
                f"Secret {owner.namespace}/{kafka.secret_ref.name} has no key "
                f"{kafka.secret_ref.key}; add it with the Kafka bootstrap servers"
            )
        try:
            servers = base64.b64decode(encoded).decode().strip()
        except ValueError:
            servers = ""
        self.secret_values.remember_bootstrap_servers(servers)
        if not _is_address_list(servers):
            raise KafkaSecretUnusable(
                f"{where} does not hold Kafka bootstrap servers; put host:port pairs there, "
                "separated by commas"
            )
        return servers, where

    def _decide_replicas(
        self, owner: children.Owner, kafka: KafkaView, pods: list[Object]
    ) -> ScaleDecision:
        spec = owner.spec
        current = spec.replicas
        autoscaling = spec.autoscaling
        drain = None
        if kafka.progress is not None:
            # Measured whatever the mode: the rate is on the dashboard either way.
            meter = self.rate_meters.setdefault(owner.uid, draining.RateMeter())
            labels = (owner.namespace, owner.name, spec.processor)
            drain = draining.measure(
                meter, labels, kafka.progress, pods, current, kafka.partitions, time.monotonic()
            )
        if not autoscaling.enabled or spec.suspend or kafka.lag is None or not kafka.partitions:
            self.stabilizers.pop(owner.uid, None)
            return ScaleDecision(current)
        lag = sum(kafka.lag.values())
        top = ceiling(autoscaling, kafka.partitions)
        # Bounds that changed (or a manual scale outside them) apply at once, not after a window.
        bounded = min(max(current, autoscaling.min_replicas), top)
        drain_reason = None
        if autoscaling.target_drain_seconds is not None and drain is not None:
            drained = draining.decide(autoscaling, drain)
            if drained.replicas is None:
                self.log.info("%s/%s: %s", owner.namespace, owner.name, drained.reason)
                return ScaleDecision(current)
            recommendation, drain_reason = drained.replicas, drained.reason
        else:
            recommendation = recommend(autoscaling, lag, kafka.partitions)
        stabilizer = self.stabilizers.setdefault(owner.uid, Stabilizer())
        wanted = stabilizer.decide(autoscaling, bounded, recommendation, time.monotonic())
        if wanted == current:
            return ScaleDecision(current)
        direction = "up" if wanted > current else "down"
        if drain_reason is not None:
            return ScaleDecision(
                wanted, direction, f"{current} -> {wanted} replicas: {drain_reason}"
            )
        return ScaleDecision(
            wanted,
            direction,
            f"consumer lag {lag} with a target of {autoscaling.target_lag_per_replica} per "
            f"replica: {current} -> {wanted} replicas (at most {top}: "
            f"maxReplicas {autoscaling.max_replicas}, {kafka.partitions} partitions)",
        )

    def forget(self, body: Mapping[str, Any]) -> None:
        """The resource is gone (or no longer watched): drop its history and its gauges."""
        metadata = body["metadata"]
        self.stabilizers.pop(metadata["uid"], None)
        labels = (metadata["namespace"], metadata["name"], body["spec"]["processor"])
        self.stalls.forget(metadata["uid"], labels)
        self.rate_meters.pop(metadata["uid"], None)
        draining.forget(labels)
        for gauge in (metrics.REPLICAS, metrics.CONSUMER_LAG):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)

    async def _prune(self, owner: children.Owner, wanted: list[Object], monitored: bool) -> None:
        keep = {(item["apiVersion"], item["kind"], item["metadata"]["name"]) for item in wanted}
        selector = f"app.kubernetes.io/instance={owner.name},app.kubernetes.io/managed-by=" + (
            children.MANAGED_BY
        )
        for kind in OWNED_KINDS:
            if kind == SERVICE_MONITOR and not monitored:
                continue
            for found in await self.kube.list(
                kind.api_version, kind.kind, owner.namespace, selector
            ):
                found_name = found["metadata"]["name"]
                owners = found["metadata"].get("ownerReferences", [])
                ours = any(reference.get("uid") == owner.uid for reference in owners)
                if ours and (kind.api_version, kind.kind, found_name) not in keep:
                    await self.kube.delete(kind.api_version, kind.kind, owner.namespace, found_name)


def _scaled_away(owner: children.Owner, member: str, kept: Mapping[str, int]) -> bool:
    """Whether ``member`` names a pod of one of the processor's StatefulSets (``<workload>-<n>``)
    whose ordinal is at or past the replicas its workload keeps (none, for a workload gone)."""
    workload, _, ordinal = member.rpartition("-")
    tracks = {children.workload_name(owner, track) for track in (children.STABLE, children.CANARY)}
    return workload in tracks and ordinal.isdigit() and int(ordinal) >= kept.get(workload, 0)


def _pod_selector(owner: children.Owner) -> str:
    """The processor's pods of both tracks: canary pods are members of the group too."""
    return ",".join(f"{key}={value}" for key, value in children.selector(owner).items())


class KafkaSecretUnusable(Exception):
    """The Secret a StreamProcessor names for its Kafka address is missing, lacks the key, or
    holds no address list there. The message names the Secret and key, never the value."""


def _is_address_list(servers: str) -> bool:
    """``host:port[,host:port...]``: what Kafka clients take as bootstrap servers."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or " " in host:
            return False
    return True


def _status(
    observation: Observation,
    previous: StreamProcessorStatus,
    workload: Object,
    kafka: KafkaView,
    replicas: int,
    owner: children.Owner,
    scaled: bool,
    rollout: Rollout,
) -> StreamProcessorStatus:
    spec = owner.spec
    condition = observation.condition
    wanted = 0 if spec.suspend else replicas
    observed = workload.get("status", {})
    ready = int(observed.get("readyReplicas", 0))
    rolled_out = _rolled_out(workload, wanted) and ready >= wanted
    topics_ready: Condition
    if kafka.problem:
        topics_ready = condition("TopicsReady", "Unknown", "KafkaUnreachable", kafka.problem)
    elif kafka.missing_topics:
        topics_ready = condition(
            "TopicsReady",
            "False",
            "TopicsMissing",
            f"input topics not found in Kafka: {', '.join(kafka.missing_topics)}",
        )
    else:
        topics_ready = condition("TopicsReady", "True", "TopicsFound")
    progressing = condition(
        "Progressing",
        truth(not rolled_out),
        "RollingOut" if not rolled_out else "RolloutComplete",
        (rollout.message or f"{ready}/{wanted} replicas ready") if not rolled_out else "",
    )
    suspended = condition(
        "Suspended",
        truth(spec.suspend),
        "Suspended" if spec.suspend else "Running",
        "scaled to zero; state and offsets are kept" if spec.suspend else "",
    )
    degraded_reason = ""
    if kafka.problem:
        degraded_reason = kafka.problem
    elif rollout.too_slow:
        degraded_reason = rollout.too_slow
    elif not rolled_out and _progressing_for(observation, previous) > PROGRESS_DEADLINE_SECONDS:
        degraded_reason = (
            f"only {ready} of {wanted} replicas ready after {PROGRESS_DEADLINE_SECONDS} s; "
            "see `kubectl describe pods` for why (image, volumes, scheduling)"
        )
    degraded = condition(
        "Degraded",
        truth(bool(degraded_reason)),
        "RestoreTooSlow"
        if rollout.too_slow and not kafka.problem
        else _degraded_reason(kafka, degraded_reason),
        degraded_reason,
    )
    is_ready = (
        not spec.suspend and rolled_out and ready >= wanted and topics_ready.status != "False"
    )
    phase: Phase
    if spec.suspend:
        ready_condition = condition("Ready", "False", "Suspended", "spec.suspend is true")
        phase = "Suspended"
    elif is_ready:
        ready_condition = condition("Ready", "True", "ReplicasReady", f"{ready}/{wanted} ready")
        phase = "Degraded" if degraded_reason else "Running"
    else:
        why = topics_ready.message if topics_ready.status == "False" else f"{ready}/{wanted} ready"
        ready_condition = condition("Ready", "False", "NotReady", why)
        phase = "Degraded" if degraded_reason else "Pending"
    lag = None
    if kafka.lag is not None:
        lag = ConsumerLag(total=sum(kafka.lag.values()), per_topic=kafka.lag)
    current = [ready_condition, topics_ready, progressing, degraded, suspended]
    return StreamProcessorStatus(
        phase=phase,
        conditions=settle(previous.conditions, current),
        observed_generation=observation.generation,
        replicas=wanted,
        ready_replicas=ready,
        selector=children.selector_string(owner),
        consumer_lag=lag,
        last_scale_time=observation.at if scaled else previous.last_scale_time,
        message=ready_condition.message if not is_ready else "",
    )


def _progressing_for(observation: Observation, previous: StreamProcessorStatus) -> float:
    """Seconds the previous status has said Progressing=True (0 when it did not)."""
    for condition in previous.conditions:
        if condition.type == "Progressing" and condition.status == "True":
            return (observation.at - condition.last_transition_time).total_seconds()
    return 0.0


def _degraded_reason(kafka: KafkaView, degraded: str) -> str:
    if kafka.problem:
        return "KafkaUnreachable"
    return "ReplicasUnavailable" if degraded else "AsExpected"


def _rolled_out(workload: Object, wanted: int) -> bool:
    observed = workload.get("status", {})
    if observed.get("observedGeneration", 0) < workload["metadata"].get("generation", 0):
        return False
    if workload["kind"] == "StatefulSet":
        if wanted and observed.get("currentRevision") != observed.get("updateRevision"):
            return False
        return int(observed.get("replicas", 0)) == wanted and (
            int(observed.get("updatedReplicas", 0)) >= wanted
        )
    return (
        int(observed.get("replicas", 0)) == wanted
        and int(observed.get("updatedReplicas", 0)) >= wanted
        and int(observed.get("availableReplicas", 0)) >= wanted
    )


def _refused(
    observation: Observation,
    previous: StreamProcessorStatus,
    spec: StreamProcessorSpec,
    reason: str,
    message: str,
) -> StreamProcessorStatus:
    condition = observation.condition
    current = [
        condition("Ready", "False", reason, message),
        condition("Progressing", "False", reason, message),
        condition("Suspended", truth(spec.suspend), "Suspended" if spec.suspend else "Running"),
    ]
    return StreamProcessorStatus(
        phase="Failed",
        conditions=settle(previous.conditions, current),
        observed_generation=observation.generation,
        last_scale_time=previous.last_scale_time,
        message=message,
    )
