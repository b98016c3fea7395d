"""What Kafka's group coordinator says of a consumer group, and the one thing it is asked to
change: its state, which member holds which partitions, and static members removed.

A member with static membership (``CONVEYOR_GROUP_INSTANCE_ID``, a StatefulSet pod's name)
is named by its ``group.instance.id``; a member without one by its client id.
aiokafka's ``describe_consumer_groups`` speaks DescribeGroups up to v3, whose answer has no
instance id, and its LeaveGroup stops at v1, which cannot name members by instance id: this
module declares DescribeGroups v4 and LeaveGroup v3 (Kafka 2.4 and later) itself and sends
them over the admin client's connection to the group's coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Bytes, Int16, Int32, Schema, String

from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity

# The state of a group whose members all hold their assignment (the others: Empty,
# PreparingRebalance, CompletingRebalance, Dead).
STABLE = "Stable"


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    # group.instance.id, else the client id: a StatefulSet pod's name for Conveyor's pods.
    name: str
    partitions: frozenset[TopicPartition]

    def is_instance(self, instance_id: str) -> bool:
        """Whether this is the static member ``instance_id``."""
        return self.name == instance_id


@dataclass(frozen=True)
class GroupView:
    group_id: str
    state: str
    members: tuple[GroupMember, ...]

    @property
    def settled(self) -> bool:
        """Stable, and every member holds its assignment (none is left waiting for one)."""
        return self.state == STABLE and all(member.partitions for member in self.members)

    def owner_of(self, partition: TopicPartition) -> GroupMember | None:
        for member in self.members:
            if partition in member.partitions:
                return member
        return None

    def member(self, instance_id: str) -> GroupMember | None:
        for member in self.members:
            if member.is_instance(instance_id):
                return member
        return None


@contextlib.asynccontextmanager
async def _admin(
    bootstrap_servers: str, doing: str, timeout_seconds: float, security: KafkaSecurity
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; Kafka failing or out of reach while ``doing`` is
    KafkaUnavailable."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_seconds * 1000),
        **security.client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_seconds)
        yield admin
    except (KafkaError, OSError, TimeoutError) as exc:
        raise KafkaUnavailable(f"could not {doing} at {bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


async def describe_group(
    bootstrap_servers: str,
    group_id: str,
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> GroupView:
    """The group as its coordinator sees it now; KafkaUnavailable when it cannot be asked."""
    async with _admin(
        bootstrap_servers, f"describe group {group_id}", timeout_seconds, security
    ) as admin:
        return await asyncio.wait_for(describe_with(admin, group_id), timeout_seconds)


async def describe_with(admin: AIOKafkaAdminClient, group_id: str) -> GroupView:
    """``describe_group`` over an admin client the caller holds (and closes)."""
    coordinator = await admin.find_coordinator(group_id)
    response = await admin._send_request(_DescribeGroups([group_id]), coordinator)
    [(error_code, _, state, _, _, members, _)] = response.groups
    if error_code:
        raise for_code(error_code)(f"describing group {group_id}")
    return GroupView(
        group_id,
        state,
        tuple(
            GroupMember(member_id, instance_id or client_id, _assigned(assignment))
            for member_id, instance_id, client_id, _, _, assignment in members
        ),
    )


def owners(view: GroupView) -> dict[tuple[str, int], str]:
    """The member (by name) each (topic, partition) is assigned to in the current generation."""
    return {
        (partition.topic, partition.partition): member.name
        for member in view.members
        for partition in member.partitions
    }


def _assigned(assignment: bytes) -> frozenset[TopicPartition]:
    """The partitions of a member's assignment (empty while it has none)."""
    if not assignment:
        return frozenset()
    return frozenset(ConsumerProtocolMemberAssignment.decode(assignment).partitions())


# aiokafka's protocol classes are untyped.
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


# The error a member already gone from the group is answered with (UNKNOWN_MEMBER_ID).
_UNKNOWN_MEMBER = 25


# aiokafka's protocol classes are untyped.
class _LeaveGroupResponseV3(Response):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "members",
            Array(
                ("member_id", String("utf-8")),
                ("group_instance_id", String("utf-8")),
                ("error_code", Int16),
            ),
        ),
    )


class _LeaveGroupRequestV3(RequestStruct):  # type: ignore[misc]
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponseV3
    SCHEMA = Schema(
        ("group", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class _RemoveStaticMembers(Request[_LeaveGroupRequestV3]):  # type: ignore[misc]
    """LeaveGroup for static members named by instance id; aiokafka has only v0 and v1."""

    API_KEY = 13

    def __init__(self, group_id: str, instance_ids: list[str]) -> None:
        self._group_id = group_id
        self._instance_ids = instance_ids

    def build(self, request_struct_class: type[_LeaveGroupRequestV3]) -> _LeaveGroupRequestV3:
        # The empty member id asks the coordinator to find each member by its instance id.
        return request_struct_class(self._group_id, [("", i) for i in self._instance_ids])


async def remove_static_members(
    bootstrap_servers: str,
    group_id: str,
    instance_ids: list[str],
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """The static members ``instance_ids`` out of ``group_id`` now, as though each had left:
    the group rebalances their partitions onto the others at once rather than after their
    session timeout. A member already gone is no error."""
    doing = f"remove {instance_ids} from group {group_id}"
    async with _admin(bootstrap_servers, doing, timeout_seconds, security) as admin:
        coordinator = await admin.find_coordinator(group_id)
        # The admin client sends what it is given to the node it names; the request is ours.
        response = await asyncio.wait_for(
            admin._send_request(_RemoveStaticMembers(group_id, instance_ids), coordinator),
            timeout_seconds,
        )
    refused = [
        f"{instance_id}: error {code}"
        for _, instance_id, code in response.members
        if code not in (0, _UNKNOWN_MEMBER)
    ]
    if response.error_code or refused:
        raise KafkaUnavailable(
            f"Kafka refused to remove {instance_ids} from group {group_id}: "
            f"error {response.error_code}; {refused}"
        )
