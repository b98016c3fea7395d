"""Where a consumer group stands on each partition of its input topics, and who holds it.

The operator decides stalls and drain times from this: per partition, the offset the group
committed, the partition's end offset, and the member it is assigned to now, named by its
``group.instance.id`` (a StatefulSet pod's name: ``CONVEYOR_GROUP_INSTANCE_ID`` comes from it)
or, for a member without one, its client id.

aiokafka's ``describe_consumer_groups`` speaks DescribeGroups up to v3, whose answer has no
``group.instance.id``; v4 (Kafka 2.4 and later) adds it, so this module declares v4 itself
and sends it through the admin client's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Bytes, Int16, Int32, Schema, String

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


class _DescribeGroupsResponseV4(Response):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            Array(
                ("error_code", Int16),
                ("group", String("utf-8")),
                ("state", String("utf-8")),
                ("protocol_type", String("utf-8")),
                ("protocol", String("utf-8")),
                (
                    "members",
                    Array(
                        ("member_id", String("utf-8")),
                        ("group_instance_id", String("utf-8")),
                        ("client_id", String("utf-8")),
                        ("client_host", String("utf-8")),
                        ("member_metadata", Bytes),
                        ("member_assignment", Bytes),
                    ),
                ),
                ("authorized_operations", Int32),
            ),
        ),
    )


class _DescribeGroupsRequestV4(RequestStruct):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    RESPONSE_TYPE = _DescribeGroupsResponseV4
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


class _DescribeGroups(Request[_DescribeGroupsRequestV4]):  # type: ignore[misc]
    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(
        self, request_struct_class: type[_DescribeGroupsRequestV4]
    ) -> _DescribeGroupsRequestV4:
        return request_struct_class(self._groups, False)


async def group_owners(admin: AIOKafkaAdminClient, group_id: str) -> dict[tuple[str, int], str]:
    """The member each (topic, partition) is assigned to in ``group_id``'s current generation."""
    coordinator = await admin.find_coordinator(group_id)
    # The admin client's own connection: its public describe stops at v3 (see above).
    response = await admin._send_request(_DescribeGroups([group_id]), coordinator)
    owners: dict[tuple[str, int], str] = {}
    for error_code, _group, _state, _type, _protocol, members, _ops in response.groups:
        if error_code:
            raise for_code(error_code)(f"describing group {group_id}")
        for _member, instance_id, client_id, _host, _metadata, assignment in members:
            if not assignment:
                continue
            owner = instance_id or client_id
            for topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                for partition in partitions:
                    owners[(topic, partition)] = owner
    return owners


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
            admin = await reader.admin()
            owners = await group_owners(admin, group_id)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaUnavailable(
                f"could not describe group {group_id} at {bootstrap_servers}: {exc!r}"
            ) from exc
    finally:
        await reader.close()
    wanted = set(topics)
    return {
        key: PartitionProgress(key[0], key[1], committed, end, owners.get(key))
        for key, (committed, end) in offsets.items()
        if key[0] in wanted
    }
