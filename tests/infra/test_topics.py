"""Making topics, on the real broker: created and grown through one path, or waited for by a
processor that must not create them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor.domain.topics import TOPICS, dead_letter_topic
from conveyor.infra.errors import TopicsMissing
from conveyor.infra.topic_admin import (
    COMPACTED_TOPIC_CONFIG,
    TopicState,
    WantedTopic,
    compacted_topic,
    declared_topics,
    ensure_topics,
    topic_admin,
    verify_topics,
)
from tests.support.stack import RunningStack
from tests.support.waiting import eventually_async


def unique(what: str) -> str:
    return f"test.topics.{what}.{uuid.uuid4().hex[:8]}"


async def described(bootstrap: str, name: str) -> TopicState | None:
    """The topic as Kafka describes it now (None when it does not exist)."""
    async with topic_admin(bootstrap) as admin:
        return await admin.describe(name)


async def listed(bootstrap: str, name: str) -> TopicState:
    """The topic once Kafka lists it: a topic just made may take a moment to be."""
    return await eventually_async(
        lambda: described(bootstrap, name), f"topic {name} listed by Kafka", within=30
    )


def test_the_declared_topics_are_every_topic_with_its_dead_letters_at_their_partitions() -> None:
    wanted = {topic.name: topic for topic in declared_topics(replication_factor=3)}
    for spec in TOPICS.values():
        assert wanted[spec.name].partitions == spec.partitions
        assert wanted[dead_letter_topic(spec)].partitions == spec.partitions
    assert {topic.replication_factor for topic in wanted.values()} == {3}


async def test_missing_topics_are_created_short_ones_grown_and_nothing_else_changed(
    stack: RunningStack,
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    short, missing, changelog = unique("short"), unique("missing"), unique("changelog")
    async with topic_admin(bootstrap) as admin:
        await admin.create(short, 2, 1, {"retention.ms": "3600000"})
    await listed(bootstrap, short)

    changed = await ensure_topics(
        bootstrap,
        [
            WantedTopic(short, 4),
            WantedTopic(missing, 3, config={"retention.ms": "60000"}),
            compacted_topic(changelog, 2),
        ],
    )

    assert changed == sorted([short, missing, changelog])
    grown = await listed(bootstrap, short)
    # Grown, and its config (owned by whoever made it) left as it was.
    assert (grown.partitions, dict(grown.config)) == (4, {"retention.ms": "3600000"})
    created = await listed(bootstrap, missing)
    assert (created.partitions, dict(created.config)) == (3, {"retention.ms": "60000"})
    compacted = await listed(bootstrap, changelog)
    assert dict(compacted.config) == COMPACTED_TOPIC_CONFIG

    # Asked again, or for fewer partitions than there are, nothing changes: never a shrink.
    again = await ensure_topics(bootstrap, [WantedTopic(short, 1), WantedTopic(missing, 3)])
    assert again == []
    assert (await described(bootstrap, short) or grown).partitions == 4


async def test_processes_starting_together_each_ensure_the_same_topics_without_failing(
    stack: RunningStack,
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    name = unique("raced")
    async with topic_admin(bootstrap) as admin:
        await admin.create(name, 1, 1, {})
    await listed(bootstrap, name)
    wanted = [WantedTopic(name, 5), WantedTopic(unique("raced-new"), 2)]
    await asyncio.gather(*(ensure_topics(bootstrap, wanted) for _ in range(4)))
    for topic in wanted:
        found = await listed(bootstrap, topic.name)
        assert found.partitions == topic.partitions


async def test_verifying_waits_for_topics_their_owner_makes_later(stack: RunningStack) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    late = unique("late")

    async def owner_makes_it() -> None:
        await asyncio.sleep(1.5)
        await ensure_topics(bootstrap, [WantedTopic(late, 3)])

    making = asyncio.create_task(owner_makes_it())
    await verify_topics(bootstrap, [WantedTopic(late, 3)], wait_seconds=60, check_every_seconds=0.2)
    await making
    found = await listed(bootstrap, late)
    assert found.partitions == 3


async def test_verifying_never_creates_and_names_what_is_missing_or_too_small(
    stack: RunningStack,
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    absent, small = unique("absent"), unique("small")
    await ensure_topics(bootstrap, [WantedTopic(small, 2)])
    await listed(bootstrap, small)
    with pytest.raises(TopicsMissing) as refused:
        await verify_topics(
            bootstrap,
            [WantedTopic(absent, 3), WantedTopic(small, 6)],
            wait_seconds=1,
            check_every_seconds=0.2,
        )
    message = str(refused.value)
    assert f"{absent} does not exist" in message
    assert f"{small} has 2 partitions, 6 are declared" in message
    assert "Topic resources own them" in message
    assert await described(bootstrap, absent) is None
    assert (await described(bootstrap, small) or TopicState(small, 0, 0, {})).partitions == 2
