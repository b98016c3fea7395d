"""The one way Conveyor makes Kafka topics: read, create, grow, verify, set config, delete.

Every topic is created and grown through ``TopicAdmin.create`` and ``TopicAdmin.grow``,
whoever owns it: the operator for a Topic resource (one topic at a time, with its config
kept as declared), and ``ensure_topics`` for a list of topics (the local stack's, from the
declarations in ``conveyor.domain.topics``; a processor's own table changelogs; the replay
ledger). ``verify_topics`` is the side of a processor in a cluster, where the Topic
resources own its topics: it waits for them and never creates one. Broker auto-creation is
never relied on, because a table's changelog and its source topic must have the same
partition count. A topic's config is owned whole: ``set_config`` makes the topic's dynamic
config exactly what is given, so a setting added directly in Kafka is removed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import BrokerResponseError, KafkaError

from conveyor.domain.processors import RETRIED_TOPICS
from conveyor.domain.topics import TOPICS, TopicSpec, dead_letter_topic, retry_topic
from conveyor.infra.errors import InfraError, KafkaUnavailable, TopicRefused, TopicsMissing
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

# A compacted topic (a table's changelog) keeps the newest record per key, and drops a key
# whose newest record is a tombstone. A restore reads the whole changelog, so what it reads
# beyond the live entries is the part compaction has not reached: the active segment (never
# compacted) and tombstones still kept. Segments roll every minute and tombstones stay a
# minute: a restoring worker that misses one brings its entry back, and the entry's own
# expiry has the sweeper delete it again.
COMPACTED_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(60 * 1000),
    "delete.retention.ms": str(60 * 1000),
    "min.cleanable.dirty.ratio": "0.25",
}

# DescribeConfigs' config_source for a value set on the topic itself (not a broker default).
_DYNAMIC_TOPIC_CONFIG = 1
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3


@dataclass(frozen=True)
class TopicState:
    """A topic as Kafka has it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class WantedTopic:
    """A topic as it should be: created with this, grown to at least ``partitions``."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def declared_topics(
    replication_factor: int = 1, include_dead_letter: bool = True
) -> list[WantedTopic]:
    """Every topic Conveyor's messages travel on, as the declarations in
    ``conveyor.domain.topics`` want it (what ``manifests/topics`` holds as Topic resources).

    A dead-letter or retry topic is made from its source's declaration: same partitions,
    so a record parked or dead-lettered keeps its partition number.
    """

    def wanted(name: str, spec: TopicSpec) -> WantedTopic:
        config = COMPACTED_TOPIC_CONFIG if spec.compacted else {}
        return WantedTopic(name, spec.partitions, replication_factor, config)

    topics: list[WantedTopic] = []
    for spec in TOPICS.values():
        topics.append(wanted(spec.name, spec))
        if include_dead_letter:
            topics.append(wanted(dead_letter_topic(spec), spec))
    topics.extend(wanted(retry_topic(spec), spec) for spec in RETRIED_TOPICS)
    return topics


def compacted_topic(name: str, partitions: int, replication_factor: int = 1) -> WantedTopic:
    """A topic that keeps the newest record per key: a table's changelog, a ledger."""
    return WantedTopic(name, partitions, replication_factor, COMPACTED_TOPIC_CONFIG)


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

    async def names(self) -> set[str]:
        """The name of every topic Kafka has."""
        try:
            return set(await self._admin.list_topics())
        except KafkaError as exc:
            raise self._unavailable("listing the topics", exc) from exc

    async def partition_counts(self, names: Sequence[str]) -> dict[str, int]:
        """How many partitions each of ``names`` has, in one request; a missing one is left out."""
        if not names:
            return {}
        try:
            described = await self._admin.describe_topics(list(names))
        except KafkaError as exc:
            raise self._unavailable(f"describing topics {', '.join(names)}", exc) from exc
        counts = {}
        for found in described:
            if found["error_code"] == _UNKNOWN_TOPIC or not found["partitions"]:
                continue
            _check(found["error_code"], f"describing topic {found['topic']}", None)
            counts[found["topic"]] = len(found["partitions"])
        return counts

    async def ensure(self, wanted: Iterable[WantedTopic]) -> list[str]:
        """Creates the missing topics and grows any with too few partitions (never shrinks
        one, never changes the config of one that exists); returns the names it changed."""
        topics = {topic.name: topic for topic in wanted}
        counts = await self.partition_counts(list(topics))
        changed = []
        for name, topic in topics.items():
            if name not in counts:
                await self.create(name, topic.partitions, topic.replication_factor, topic.config)
            elif counts[name] < topic.partitions:
                try:
                    await self.grow(name, topic.partitions)
                except TopicRefused:
                    # Kafka refuses to grow a topic to the count it already has: another
                    # process starting beside this one may have grown it first.
                    if not await self._has_partitions(name, topic.partitions):
                        raise
            else:
                continue
            changed.append(name)
        # A client asking for metadata right after (a Faust worker subscribing to a changelog
        # just made) must find the topics whole: a changelog seen with no partitions makes
        # Faust refuse the table's first write with PartitionsMismatch.
        for name in changed:
            if not await self._has_partitions(name, topics[name].partitions):
                raise KafkaUnavailable(
                    f"topic {name} was made but Kafka's metadata does not show its "
                    f"{topics[name].partitions} partitions yet; try again"
                )
        return sorted(changed)

    async def _has_partitions(self, name: str, partitions: int) -> bool:
        # The broker's metadata can take a moment to show a topic or partitions just made.
        for _ in range(20):
            if (await self.partition_counts([name])).get(name, 0) >= partitions:
                return True
            await asyncio.sleep(0.5)
        return False

    async def missing(self, wanted: Iterable[WantedTopic]) -> list[str]:
        """What keeps ``wanted`` from being there: each topic absent or with too few
        partitions, as a sentence; empty when every one is there."""
        topics = list(wanted)
        counts = await self.partition_counts([topic.name for topic in topics])
        problems = []
        for topic in topics:
            found = counts.get(topic.name)
            if found is None:
                problems.append(f"{topic.name} does not exist")
            elif found < topic.partitions:
                problems.append(
                    f"{topic.name} has {found} partitions, {topic.partitions} are declared"
                )
        return problems

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
    bootstrap_servers: str, timeout_seconds: float = 15.0, *, security: KafkaSecurity = PLAINTEXT
) -> AsyncIterator[TopicAdmin]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_seconds * 1000),
        **security.client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_seconds)
    except (KafkaError, OSError, TimeoutError) as exc:
        await admin.close()
        raise KafkaUnavailable(
            f"no Kafka broker answered at {bootstrap_servers}: {exc!r}; check "
            "KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL"
        ) from exc
    try:
        yield TopicAdmin(admin, bootstrap_servers)
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap_servers: str,
    wanted: Iterable[WantedTopic],
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """``TopicAdmin.ensure`` through a client of its own; returns the names it changed."""
    async with topic_admin(bootstrap_servers, security=security) as admin:
        return await admin.ensure(wanted)


async def verify_topics(
    bootstrap_servers: str,
    wanted: Sequence[WantedTopic],
    wait_seconds: float,
    check_every_seconds: float = 5.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Returns once every topic of ``wanted`` exists with at least its partitions; never
    creates one. Waits while one is missing (their owner may not have made them yet),
    logging what is missing at each check, and raises TopicsMissing naming them after
    ``wait_seconds``. Kafka unreachable counts as missing, until the wait is over."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            async with topic_admin(bootstrap_servers, security=security) as admin:
                problems = await admin.missing(wanted)
        except InfraError as exc:
            problems = [str(exc)]
        if not problems:
            return
        if time.monotonic() >= deadline:
            raise TopicsMissing(
                f"after {wait_seconds:g} s, the topics are still not as declared: "
                f"{'; '.join(problems)}. They are not created here (CONVEYOR_TOPICS=verify): "
                "their Topic resources own them; see `kubectl get topics` and the operator's log"
            )
        log.warning("waiting for topics their owner has not made yet: %s", "; ".join(problems))
        await asyncio.sleep(check_every_seconds)
