"""The custom resources of ``conveyor.dev/v1alpha1``: StreamProcessor and Topic.

These models are the source of truth: the CRD YAML in ``crds/`` is generated from them
(``make crds``) and a test fails when the committed files differ from what they generate.
Field names are Kubernetes' camelCase; rules the API server must enforce (CEL) are attached
to the models they constrain through ``x-kubernetes-validations``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from conveyor.domain.processors import ProcessorName

GROUP = "conveyor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class _Resource(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    return {
        "x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]
    }


class Autoscaling(_Resource):
    """Scale on consumer lag, between minReplicas and maxReplicas (and never beyond the
    partition count of the processor's input topics)."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas")
        )
    )

    enabled: bool = False
    min_replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int = Field(default=6, ge=1, le=1000)
    target_lag_per_replica: int = Field(
        default=1000, ge=1, description="Records of lag one replica is expected to absorb."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=86400, description="Lag must stay low this long before scaling down."
    )
    target_drain_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86400,
        description="Scale so the lag drains in this many seconds at the measured processing "
        "rate per replica; replaces targetLagPerReplica when set.",
    )


SecretName = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]


class SecretKeyRef(_Resource):
    """A key of a Secret in the resource's own namespace: there is no namespace to name, and
    the name is one DNS name, never a path."""

    name: SecretName
    key: str = Field(
        default="KAFKA_BOOTSTRAP_SERVERS",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="A key of that Secret: letters, digits, '-', '_' and '.'.",
    )


class KafkaConnection(_Resource):
    """Where Kafka is: an address list, or a Secret key holding it."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "has(self.bootstrapServers) != has(self.secretRef)",
                "set exactly one of bootstrapServers and secretRef",
            )
        )
    )

    bootstrap_servers: str | None = Field(default=None, min_length=1, max_length=2048)
    secret_ref: SecretKeyRef | None = None


class StateStore(_Resource):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.store == 'rocksdb' || !has(self.standbyReplicas) "
                "|| self.standbyReplicas == 0",
                "standbyReplicas needs store rocksdb: a memory store's pods keep no table "
                "between starts, so there is nothing for a standby to keep warm",
            )
        )
    )

    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description="rocksdb keeps tables on a PersistentVolumeClaim (a StatefulSet); memory "
        "rebuilds them from the changelogs at every start (a Deployment).",
    )
    size: str = Field(default="1Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    storage_class_name: str | None = Field(default=None, max_length=253)
    restore_deadline_seconds: int = Field(
        default=600,
        ge=1,
        description="How long a pod rolled by an update may take to restore its tables and "
        "become ready before the processor reports Degraded (reason RestoreTooSlow); the "
        "rollout keeps waiting for it.",
    )
    standby_replicas: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Replicas that keep a warm copy of each table partition they do not own "
        "(Faust's table_standby_replicas): a partition whose pod dies moves to a pod that "
        "already holds its table, rather than one that must restore it from the changelog. "
        "rocksdb only; each standby reads every changelog it mirrors.",
    )


class EnvVar(_Resource):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=253)
    value: str = Field(default="", max_length=32768)


class Canary(_Resource):
    """A second set of pods with another image in the same consumer group."""

    image: str = Field(min_length=1, max_length=1024)
    replicas: int = Field(default=1, ge=0, le=100)


class StallDetection(_Resource):
    """A partition with lag whose committed offset stands still while its owning pod is
    Ready is stalled: reported, and healed by restarting that pod within a budget."""

    stall_seconds: int = Field(
        default=120,
        ge=1,
        le=86400,
        description="Seconds a partition's committed offset may stand still with lag before "
        "it counts as stalled.",
    )
    remediation: Literal["restart", "none"] = Field(
        default="restart",
        description="restart deletes the pod owning a stalled partition; none only reports.",
    )
    max_restarts_per_hour: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="Stall restarts allowed per resource in any rolling hour; beyond them "
        "stalls are only reported.",
    )


class StreamProcessorSpec(_Resource):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            ("self.processor == oldSelf.processor", "processor cannot change; create another"),
        )
    )

    processor: ProcessorName
    image: str = Field(min_length=1, max_length=1024)
    replicas: int = Field(default=1, ge=0, le=1000)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    kafka: KafkaConnection
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    state: StateStore = Field(default_factory=StateStore)
    resources: dict[str, Any] = Field(
        default_factory=dict,
        description="Container resources (requests, limits), as in a Pod.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=100)
    env_from_secrets: list[SecretName] = Field(
        default_factory=list,
        max_length=20,
        description="Secrets whose keys become environment variables of the pods (e.g. "
        "DATABASE_URL with its password); env entries override them.",
    )
    suspend: bool = Field(default=False, description="Scale to zero and keep the state.")
    restart_nonce: str | None = Field(
        default=None, max_length=253, description="Change it to roll every pod."
    )
    canary: Canary | None = None
    stall_detection: StallDetection = Field(default_factory=StallDetection)


ConditionType = Literal["Ready", "TopicsReady", "Progressing", "Degraded", "Suspended", "Stalled"]
ConditionStatus = Literal["True", "False", "Unknown"]


# The one condition type of both kinds' statuses; the operator keeps lastTransitionTime
# while the status holds (``conveyor.operator.conditions.settle``).
class Condition(_Resource):
    type: ConditionType
    status: ConditionStatus
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = None


class ConsumerLag(_Resource):
    total: int = Field(ge=0)
    per_topic: dict[str, int] = Field(default_factory=dict)


Phase = Literal["Pending", "Running", "Degraded", "Suspended", "Failed"]


class StreamProcessorStatus(_Resource):
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    # The scale subresource's label selector, so `kubectl scale` and HPAs can find the pods.
    selector: str | None = None
    consumer_lag: ConsumerLag | None = None
    last_scale_time: datetime | None = None
    message: str | None = None
    # When the operator restarted a pod over a stalled partition, within the last hour: the
    # budget of spec.stallDetection.maxRestartsPerHour survives a restart of the operator.
    stall_restarts: list[datetime] | None = None


class TopicResourceSpec(_Resource):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            ("self.topicName == oldSelf.topicName", "topicName cannot change"),
            (
                "self.replicationFactor == oldSelf.replicationFactor",
                "replicationFactor cannot change",
            ),
        )
    )

    topic_name: str = Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")
    partitions: int = Field(ge=1, le=10000)
    replication_factor: int = Field(default=1, ge=1, le=32)
    config: dict[str, str] = Field(default_factory=dict, description="Kafka topic configs.")
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain", description="Delete also deletes the topic in Kafka."
    )


class TopicStatus(_Resource):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    partitions: int | None = None
    message: str | None = None
