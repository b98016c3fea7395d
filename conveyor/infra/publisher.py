"""Publishing commands and events from outside a processor (the edge, the CLI, tests)."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from uuid import UUID

from aiokafka.errors import KafkaError

from conveyor.domain.codec import encode
from conveyor.domain.messages import Message
from conveyor.domain.topics import topic_for
from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka import create_producer
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity


class Publisher:
    """Writes each message to its one topic, durably (acks=all, idempotent producer)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        security: KafkaSecurity = PLAINTEXT,
        **producer_options: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._producer = create_producer(bootstrap_servers, security=security, **producer_options)

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            await self._producer.stop()
            raise KafkaUnavailable(
                f"no Kafka broker answered at {self.bootstrap_servers}: {exc!r}; "
                "check KAFKA_BOOTSTRAP_SERVERS or start the local stack with `conveyor dev up`"
            ) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def check_reachable(self) -> None:
        """Ask the brokers for the cluster's metadata over the producer's own connections."""
        try:
            await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError) as exc:
            raise KafkaUnavailable(
                f"no Kafka broker answered at {self.bootstrap_servers}: {exc!r}"
            ) from exc

    async def publish(self, message: Message, *, event_id: UUID | None = None) -> UUID:
        """Send ``message`` and return once Kafka acknowledged it; returns its event id."""
        spec = topic_for(type(message))
        record = encode(spec, message, event_id=event_id)
        try:
            await self._producer.send_and_wait(
                spec.name, record.value, key=record.key, headers=list(record.headers)
            )
        except KafkaError as exc:
            raise KafkaUnavailable(f"Kafka did not accept {message.type}: {exc!r}") from exc
        assert record.event_id is not None
        return record.event_id
