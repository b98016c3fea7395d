"""Handing commands to Kafka from the edge: durable, bounded in time, honest when it cannot.

The producer starts lazily and again after a failure, so the edge serves reads (and says
503 to writes) while Kafka is away, instead of refusing to start. A send that Kafka has not
acknowledged within the timeout is reported as ServiceUnavailable; the command may still
arrive later, which is why every command carries an id derived from what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol
from uuid import UUID

from conveyor.api import metrics
from conveyor.api.errors import ServiceUnavailable
from conveyor.domain.messages import Message
from conveyor.infra.errors import KafkaUnavailable
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity
from conveyor.infra.publisher import Publisher

log = logging.getLogger("conveyor.api")


class Sends(Protocol):
    """What the routes need of a sender; ``create_app`` takes any (benchmarks swap in one
    that accepts at once, to measure the edge without Kafka)."""

    async def send(self, message: Message, *, event_id: UUID | None = None) -> UUID: ...

    async def check_reachable(self) -> None: ...

    async def close(self) -> None: ...


class CommandSender:
    def __init__(
        self,
        bootstrap_servers: str,
        send_timeout: float,
        retry_after: int,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security
        self.send_timeout = send_timeout
        self.retry_after = retry_after
        self._publisher: Publisher | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> Publisher:
        async with self._starting:
            if self._publisher is None:
                # Awaited one at a time by the edge's requests: no linger, send at once.
                publisher = Publisher(
                    self.bootstrap_servers,
                    security=self.security,
                    linger_ms=0,
                    request_timeout_ms=int(self.send_timeout * 1000),
                )
                await asyncio.wait_for(publisher.__aenter__(), self.send_timeout)
                self._publisher = publisher
            return self._publisher

    async def send(self, message: Message, *, event_id: UUID | None = None) -> UUID:
        """Return once Kafka acknowledged ``message`` (acks=all); ServiceUnavailable otherwise."""
        try:
            # One deadline for the whole send, start included: a request queued behind
            # another's attempt to reach a silent broker waits no longer than the first.
            return await asyncio.wait_for(self._publish(message, event_id), self.send_timeout)
        except (KafkaUnavailable, TimeoutError, OSError) as exc:
            metrics.KAFKA_PUBLISH_FAILURES.inc()
            log.warning("Kafka did not take %s: %r", message.type, exc)
            await self._reset()
            raise ServiceUnavailable(
                "Kafka is unavailable, so nothing was recorded; retry shortly (an order with "
                "the same Idempotency-Key)",
                self.retry_after,
            ) from exc

    async def _publish(self, message: Message, event_id: UUID | None) -> UUID:
        publisher = await self._started()
        return await publisher.publish(message, event_id=event_id)

    async def check_reachable(self) -> None:
        """Raise when Kafka does not answer within the send timeout (for /readyz)."""
        try:
            publisher = await self._started()
            await asyncio.wait_for(publisher.check_reachable(), self.send_timeout)
        except (KafkaUnavailable, TimeoutError, OSError):
            await self._reset()
            raise

    async def _reset(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.__aexit__(None, None, None), 5)

    async def close(self) -> None:
        await self._reset()
