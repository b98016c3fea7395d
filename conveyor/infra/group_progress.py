"""Where a consumer group stands on each partition of its input topics, and who holds it.

The operator decides stalls and drain times from this: per partition, the offset the group
committed, the partition's end offset, and the member it is assigned to now, named by its
``group.instance.id`` (a StatefulSet pod's name: ``CONVEYOR_GROUP_INSTANCE_ID`` comes from it)
or, for a member without one, its client id (``conveyor.infra.groups``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaError,
    NotCoordinatorForGroupError,
)

from conveyor.infra import groups
from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka import LagReader
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity


@dataclass(frozen=True)
class PartitionProgress:
    """One partition of a group's input: committed and end offsets, and its owner now."""

    topic: str
    partition: int
    # The group's committed offset; the partition's first offset when it never committed.
    committed: int
    end: int
    # group.instance.id, else client id, of the member assigned the partition; None while
    # no member holds it (no member, or a rebalance under way).
    owner: str | None

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)

    @property
    def name(self) -> str:
        return f"{self.topic}[{self.partition}]"


# What a coordinator answers while it is being chosen or is loading its groups: the first
# use of a group on a fresh cluster, a broker restart, a partition of __consumer_offsets moving.
# Kafka's own clients look the coordinator up again and retry; so does this.
_COORDINATOR_MOVING = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)
_RETRY_PAUSE_SECONDS = 0.25


async def group_progress(
    bootstrap_servers: str,
    group_id: str,
    topics: Sequence[str],
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[tuple[str, int], PartitionProgress]:
    """Committed and end offsets and the owner of every partition of ``topics`` for the group.

    A coordinator still moving is asked again until ``timeout_seconds`` have passed. Raises
    KafkaUnavailable when Kafka cannot be read or refuses.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    reader = LagReader(bootstrap_servers, timeout_seconds, security=security)
    try:
        while True:
            try:
                return await _read(reader, bootstrap_servers, group_id, topics)
            except KafkaUnavailable as exc:
                moving = isinstance(exc.__cause__, _COORDINATOR_MOVING)
                if not moving or loop.time() + _RETRY_PAUSE_SECONDS > deadline:
                    raise
                await asyncio.sleep(_RETRY_PAUSE_SECONDS)
    finally:
        await reader.close()


async def _read(
    reader: LagReader, bootstrap_servers: str, group_id: str, topics: Sequence[str]
) -> dict[tuple[str, int], PartitionProgress]:
    offsets = await reader.offsets(group_id, topics)
    try:
        owned = groups.owners(await groups.describe_with(await reader.admin(), group_id))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise KafkaUnavailable(
            f"could not describe group {group_id} at {bootstrap_servers}: {exc!r}"
        ) from exc
    wanted = set(topics)
    return {
        key: PartitionProgress(key[0], key[1], committed, end, owned.get(key))
        for key, (committed, end) in offsets.items()
        if key[0] in wanted
    }
