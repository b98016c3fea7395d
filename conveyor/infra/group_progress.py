"""Where a consumer group stands on each partition of its input topics, and who holds it.

The operator decides stalls and drain times from this: per partition, the offset the group
committed, the partition's end offset, and the member it is assigned to now, named by its
``group.instance.id`` (a StatefulSet pod's name: ``CONVEYOR_GROUP_INSTANCE_ID`` comes from it)
or, for a member without one, its client id (``conveyor.infra.groups``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError

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


async def group_progress(
    bootstrap_servers: str,
    group_id: str,
    topics: Sequence[str],
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[tuple[str, int], PartitionProgress]:
    """Committed and end offsets and the owner of every partition of ``topics`` for the group.

    Raises KafkaUnavailable when Kafka cannot be read or refuses.
    """
    reader = LagReader(bootstrap_servers, timeout_seconds, security=security)
    try:
        offsets = await reader.offsets(group_id, topics)
        try:
            owned = groups.owners(await groups.describe_with(await reader.admin(), group_id))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaUnavailable(
                f"could not describe group {group_id} at {bootstrap_servers}: {exc!r}"
            ) from exc
    finally:
        await reader.close()
    wanted = set(topics)
    return {
        key: PartitionProgress(key[0], key[1], committed, end, owned.get(key))
        for key, (committed, end) in offsets.items()
        if key[0] in wanted
    }
