"""How Conveyor talks to Kafka's brokers: producers, reachability and consumer lag.

Topics are made in ``topic_admin``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity


def create_producer(
    bootstrap_servers: str, *, security: KafkaSecurity = PLAINTEXT, **overrides: Any
) -> AIOKafkaProducer:
    """A producer that never loses an acknowledged record.

    acks=all with idempotence means a record the broker acknowledged is on every in-sync
    replica and is written once even when the producer retries.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 15_000,
        **security.client_options(),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def describe_cluster(
    bootstrap_servers: str, timeout_seconds: float = 5.0, *, security: KafkaSecurity = PLAINTEXT
) -> dict[str, Any]:
    """The cluster's metadata; raises KafkaUnavailable when no broker answers in time."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_seconds * 1000),
        **security.client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_seconds)
        description: dict[str, Any] = await asyncio.wait_for(
            admin.describe_cluster(), timeout_seconds
        )
        return description
    except (KafkaError, OSError, TimeoutError) as exc:
        raise KafkaUnavailable(
            f"no Kafka broker answered at {bootstrap_servers}: {exc!r}; "
            "check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL, or start the local "
            "stack with `conveyor dev up`"
        ) from exc
    finally:
        await admin.close()


class LagReader:
    """Reads consumer groups' lag through one admin client and one consumer, kept open.

    A worker reports its lag every few seconds; a new admin client and consumer each time
    cost a connection handshake and a metadata fetch apiece. After a failure both are
    closed and the next read connects afresh.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        timeout_seconds: float = 10.0,
        *,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_seconds = timeout_seconds
        self.security = security
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def _connected(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            timeout_ms = int(self.timeout_seconds * 1000)
            options = {
                "bootstrap_servers": self.bootstrap_servers,
                "request_timeout_ms": timeout_ms,
                **self.security.client_options(),
            }
            admin = AIOKafkaAdminClient(**options)
            consumer = AIOKafkaConsumer(**options)
            try:
                await asyncio.wait_for(admin.start(), self.timeout_seconds)
                await asyncio.wait_for(consumer.start(), self.timeout_seconds)
            except BaseException:
                await consumer.stop()
                await admin.close()
                raise
            self._clients = (admin, consumer)
        return self._clients

    async def admin(self) -> AIOKafkaAdminClient:
        """The reader's admin client, connected, for other questions about the same group."""
        admin, _ = await self._connected()
        return admin

    async def lag(self, group_id: str, topics: Sequence[str] = ()) -> dict[tuple[str, int], int]:
        """Records beyond ``group_id``'s committed offset, per (topic, partition).

        This is what the group has yet to process, as Kafka sees it, whichever process asks.
        Partitions of ``topics`` the group never committed count from their first record, as
        the group's consumers (auto.offset.reset=earliest) will read them.
        """
        offsets = await self.offsets(group_id, topics)
        return {key: max(0, end - committed) for key, (committed, end) in offsets.items()}

    async def offsets(
        self, group_id: str, topics: Sequence[str] = ()
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """``group_id``'s committed offset and the end offset, per (topic, partition): the
        partitions it committed on, and those of ``topics`` it never committed on (these
        from their first offset, where the group will start)."""
        try:
            admin, consumer = await self._connected()
            committed = {
                tp: meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group_id)).items()
            }
            declared = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in (await admin.describe_topics(list(topics)) if topics else [])
                for partition in topic["partitions"]
            ]
            never_committed = [tp for tp in declared if tp not in committed]
            if not committed and not never_committed:
                return {}
            ends = await consumer.end_offsets([*committed, *never_committed])
            if never_committed:
                committed.update(await consumer.beginning_offsets(never_committed))
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            raise KafkaUnavailable(
                f"could not read the lag of group {group_id} at {self.bootstrap_servers}: {exc!r}"
            ) from exc
        return {
            (tp.topic, tp.partition): (max(offset, 0), ends[tp]) for tp, offset in committed.items()
        }

    async def close(self) -> None:
        if self._clients is not None:
            admin, consumer = self._clients
            self._clients = None
            await consumer.stop()
            await admin.close()


async def consumer_group_lag(
    bootstrap_servers: str,
    group_id: str,
    topics: Sequence[str] = (),
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[tuple[str, int], int]:
    """``LagReader.lag`` once, for a caller that asks now and then."""
    reader = LagReader(bootstrap_servers, timeout_seconds, security=security)
    try:
        return await reader.lag(group_id, topics)
    finally:
        await reader.close()
