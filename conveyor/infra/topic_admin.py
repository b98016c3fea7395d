"""One Kafka topic as a declared resource: read it, create it, grow it, set its config, delete it.

The operator's Topic resources go through here; the processors' own topics are provisioned
by ``kafka.ensure_topics``. A topic's config is owned whole: ``set_config`` makes the topic's
dynamic config exactly what is given, so a setting added directly in Kafka is removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import BrokerResponseError, KafkaError

from conveyor.infra.errors import InfraError, KafkaUnavailable, TopicRefused

# DescribeConfigs' config_source for a value set on the topic itself (not a broker default).
_DYNAMIC_TOPIC_CONFIG = 1
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


class TopicAdmin:
    def __init__(self, admin: AIOKafkaAdminClient, bootstrap_servers: str) -> None:
        self._admin = admin
        self._bootstrap_servers = bootstrap_servers

    async def describe(self, name: str) -> TopicState | None:
        """The topic as Kafka has it, or None when there is no such topic."""
        try:
            [found] = await self._admin.describe_topics([name])
            if found["error_code"] == _UNKNOWN_TOPIC or not found["partitions"]:
                return None
            _check(found["error_code"], f"describing topic {name}", found.get("error_message"))
            [response] = await self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name)]
            )
        except KafkaError as exc:
            raise self._unavailable(f"describing topic {name}", exc) from exc
        [resource] = response.to_object()["resources"]
        _check(resource["error_code"], f"reading the config of {name}", resource["error_message"])
        config = {
            entry["config_names"]: entry["config_value"]
            for entry in resource["config_entries"]
            if entry.get("config_source") == _DYNAMIC_TOPIC_CONFIG
        }
        replicas = {len(partition["replicas"]) for partition in found["partitions"]}
        return TopicState(name, len(found["partitions"]), max(replicas), config)

    async def create(
        self, name: str, partitions: int, replication_factor: int, config: Mapping[str, str]
    ) -> None:
        try:
            response = await self._admin.create_topics(
                [NewTopic(name, partitions, replication_factor, topic_configs=dict(config))]
            )
        except KafkaError as exc:
            raise self._unavailable(f"creating topic {name}", exc) from exc
        for _, code, message in response.topic_errors:
            if code != _TOPIC_ALREADY_EXISTS:
                _check(code, f"creating topic {name}", message)

    async def grow(self, name: str, partitions: int) -> None:
        try:
            response = await self._admin.create_partitions(
                {name: NewPartitions(total_count=partitions)}
            )
        except KafkaError as exc:
            raise self._unavailable(f"growing topic {name}", exc) from exc
        for _, code, message in response.topic_errors:
            _check(code, f"growing topic {name} to {partitions} partitions", message)

    async def set_config(self, name: str, config: Mapping[str, str]) -> None:
        try:
            responses = await self._admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, dict(config))]
            )
        except KafkaError as exc:
            raise self._unavailable(f"setting the config of {name}", exc) from exc
        for response in responses:
            for code, message, *_ in response.resources:
                _check(code, f"setting the config of {name}", message)

    async def delete(self, name: str) -> None:
        try:
            response = await self._admin.delete_topics([name])
        except KafkaError as exc:
            raise self._unavailable(f"deleting topic {name}", exc) from exc
        for _, code, *_ in response.topic_error_codes:
            if code != _UNKNOWN_TOPIC:
                _check(code, f"deleting topic {name}", None)

    def _unavailable(self, doing: str, exc: Exception) -> InfraError:
        if isinstance(exc, BrokerResponseError):
            # Kafka answered and said no: its reason is the message, not a connection problem.
            return TopicRefused(f"{doing}: {exc}")
        return KafkaUnavailable(f"{doing} at {self._bootstrap_servers} failed: {exc!r}")


def _check(code: int, doing: str, message: Any) -> None:
    if code:
        reason = message or f"Kafka error code {code}"
        raise TopicRefused(f"{doing}: {reason}")


@asynccontextmanager
async def topic_admin(
    bootstrap_servers: str, timeout_seconds: float = 15.0
) -> AsyncIterator[TopicAdmin]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_seconds * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_seconds)
    except (KafkaError, OSError, TimeoutError) as exc:
        await admin.close()
        raise KafkaUnavailable(
            f"no Kafka broker answered at {bootstrap_servers}: {exc!r}; check the operator's "
            "KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    try:
        yield TopicAdmin(admin, bootstrap_servers)
    finally:
        await admin.close()
