"""Reconciling a Topic: the Kafka topic made to match the resource, and its status.

Kafka is the source of drift: someone may add partitions, change a config or delete the topic
behind the operator's back. Each pass compares and repairs; partitions can only grow, so a
spec asking for fewer is reported (Ready=False, ShrinkRefused) and left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.domain.resources import Condition, TopicResourceSpec, TopicStatus
from conveyor.infra.errors import KafkaUnavailable, TopicRefused
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity
from conveyor.infra.topic_admin import TopicState, topic_admin
from conveyor.operator import metrics
from conveyor.operator.conditions import Observation, previous_status, settle
from conveyor.operator.kube import Kube
from conveyor.operator.processors import EventPoster


@dataclass
class TopicReconciler:
    kube: Kube
    bootstrap_servers: str
    kafka_security: KafkaSecurity = PLAINTEXT
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))

    async def reconcile(self, body: Mapping[str, Any], post_event: EventPoster) -> None:
        spec = TopicResourceSpec.model_validate(body["spec"])
        name = spec.topic_name
        observation = Observation.now(body["metadata"].get("generation"))
        partitions: int | None = None
        try:
            async with topic_admin(self.bootstrap_servers, security=self.kafka_security) as admin:
                state = await admin.describe(name)
                if state is None:
                    await admin.create(name, spec.partitions, spec.replication_factor, spec.config)
                    self._repaired(name, "created", post_event, f"created topic {name}")
                    state = await admin.describe(name)
                    if state is None:
                        raise KafkaUnavailable(f"topic {name} was created but is not listed yet")
                partitions = state.partitions
                if state.partitions < spec.partitions:
                    await admin.grow(name, spec.partitions)
                    partitions = spec.partitions
                    self._repaired(
                        name,
                        "partitions",
                        post_event,
                        f"grew {name} from {state.partitions} to {spec.partitions} partitions",
                    )
                if dict(state.config) != spec.config:
                    await admin.set_config(name, spec.config)
                    self._repaired(
                        name,
                        "config",
                        post_event,
                        f"set the config of {name} to {spec.config} (was {dict(state.config)})",
                    )
            ready = _judge(observation, spec, partitions, state)
        except TopicRefused as exc:
            ready = observation.condition("Ready", "False", "KafkaRefused", str(exc))
            post_event("Warning", "KafkaRefused", str(exc))
        except KafkaUnavailable as exc:
            ready = observation.condition("Ready", "Unknown", "KafkaUnreachable", str(exc))
        previous = previous_status(body, TopicStatus)
        status = TopicStatus(
            conditions=settle(previous.conditions, [ready]),
            observed_generation=observation.generation,
            partitions=partitions,
            message=ready.message,
        )
        await self.kube.write_status(body, status)

    async def delete(self, body: Mapping[str, Any]) -> None:
        """On deletion of the resource: delete the Kafka topic only if the policy says so."""
        spec = TopicResourceSpec.model_validate(body["spec"])
        if spec.deletion_policy != "Delete":
            self.log.info("topic %s kept in Kafka (deletionPolicy Retain)", spec.topic_name)
            return
        async with topic_admin(self.bootstrap_servers, security=self.kafka_security) as admin:
            await admin.delete(spec.topic_name)
        self.log.info("topic %s deleted from Kafka (deletionPolicy Delete)", spec.topic_name)

    def _repaired(self, topic: str, what: str, post_event: EventPoster, message: str) -> None:
        metrics.TOPIC_REPAIRS.labels(topic, what).inc()
        post_event("Normal", f"Topic{what.title()}", message)
        self.log.info("%s", message)


def _judge(
    observation: Observation, spec: TopicResourceSpec, partitions: int, state: TopicState
) -> Condition:
    if partitions > spec.partitions:
        return observation.condition(
            "Ready",
            "False",
            "ShrinkRefused",
            f"the topic has {partitions} partitions and spec.partitions is {spec.partitions}: "
            "Kafka cannot remove partitions; set spec.partitions to at least "
            f"{partitions} or create a new topic",
        )
    if state.replication_factor != spec.replication_factor:
        return observation.condition(
            "Ready",
            "False",
            "ReplicationFactorDiffers",
            f"the topic has replication factor {state.replication_factor}, spec asks "
            f"{spec.replication_factor}; Kafka's replica reassignment is not done by the operator",
        )
    return observation.condition(
        "Ready", "True", "InSync", f"{partitions} partitions, config in sync"
    )
