"""A group's committed and end offsets per partition, and which member owns each, as Kafka
tells them: what the operator's stall detection and drain-time autoscaling read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from conveyor.devstack import kafka_server, processes
from conveyor.devstack.health import kafka_is_healthy
from conveyor.devstack.settings import DevStackSettings
from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.group_progress import group_progress
from conveyor.infra.topic_admin import topic_admin
from tests.support.stack import RunningStack
from tests.support.waiting import eventually, eventually_async


@pytest.fixture
def fresh_kafka(tmp_path: Path) -> Iterator[str]:
    """A Kafka of its own that no group was ever asked about: its first group question is
    what creates ``__consumer_offsets``."""
    settings = DevStackSettings.isolated(tmp_path)
    command = kafka_server.prepare(settings, Console(stderr=True))
    log_file = tmp_path / "kafka.log"
    broker = processes.spawn("kafka", command, log_file, cwd=settings.root)
    bootstrap = f"{settings.host}:{settings.kafka_port}"
    try:
        eventually(
            lambda: broker.is_alive() and kafka_is_healthy(bootstrap),
            "the fresh Kafka answers",
            within=60,
            context=lambda: processes.log_tail(log_file),
        )
        yield bootstrap
    finally:
        processes.stop(broker)


async def test_offsets_and_the_owning_instance_of_each_partition(stack: RunningStack) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    topic, group = f"test.progress.{uuid.uuid4().hex[:8]}", f"test-progress-{uuid.uuid4().hex}"
    async with topic_admin(bootstrap) as admin:
        await admin.create(topic, 2, 1, {})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for index in range(10):
            await producer.send_and_wait(topic, b"x", partition=index % 2)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id="pod-0",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
        while sum(len(records) for records in batch.values()) == 0:
            batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
        await consumer.commit()
        read = {tp.partition: records[-1].offset + 1 for tp, records in batch.items()}
        progress = await eventually_async(
            lambda: group_progress(bootstrap, group, [topic]),
            "both partitions owned by pod-0",
            until=lambda found: all(p.owner == "pod-0" for p in found.values()),
        )
    finally:
        await consumer.stop()
    # A group no member ever joined: offsets from the start, no owner.
    idle = await group_progress(bootstrap, f"{group}-idle", [topic])
    assert {(p.committed, p.end, p.owner) for p in idle.values()} == {(0, 5, None)}
    assert sorted(progress) == [(topic, 0), (topic, 1)]
    for (_, partition), found in progress.items():
        assert found.end == 5
        assert found.committed == read.get(partition, 0)
        assert found.lag == 5 - found.committed
        assert found.name == f"{topic}[{partition}]"


async def test_a_new_clusters_first_group_is_read_while_its_coordinator_is_chosen(
    fresh_kafka: str,
) -> None:
    """A new processor on a new cluster: the operator's first read must not report Kafka
    unreachable (and the processor Degraded) while Kafka is still choosing a coordinator."""
    topic = "test.progress.first"
    async with topic_admin(fresh_kafka) as admin:
        await admin.create(topic, 2, 1, {})
    found = await group_progress(fresh_kafka, "the-first-group", [topic])
    assert {(p.committed, p.end, p.owner) for p in found.values()} == {(0, 0, None)}
    assert sorted(found) == [(topic, 0), (topic, 1)]


async def test_an_unreachable_kafka_is_a_kafka_unavailable_error() -> None:
    with pytest.raises(KafkaUnavailable, match="group-x"):
        await group_progress("127.0.0.1:1", "group-x", ["t"], timeout_seconds=1)
