"""The throughput baseline: the processors' decisions on a bare aiokafka loop.

One process per processor (``python -m benchmarks.rawchain <processor>``), on the same
topics, with the same codec and the same decide/apply functions as the real processors,
but none of the framework: state in dicts (no changelog), no dead-letter topics, no
metrics. Each loop reads a batch, decides it in order, sends what the decisions send, waits
for the broker's acknowledgements and then commits the batch's offsets: at-least-once,
like the processors.

Its consumer groups start at the end of the topics, so it only ever sees what is sent
after it is ready; it prints ``READY`` then.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from conveyor.devstack.launched import Launched
from conveyor.domain import messages as m
from conveyor.domain.codec import decode, derived_event_id, encode
from conveyor.domain.envelope import Envelope
from conveyor.domain.errors import UndecodableMessage
from conveyor.domain.processors import PROCESSOR_NAMES, PROCESSORS, processor_spec
from conveyor.domain.topics import topic_for
from conveyor.infra.kafka import create_producer
from conveyor.infra.mail import Mailer
from conveyor.infra.settings import ServiceUrls
from conveyor.streams.metrics import SMTP_CONNECTIONS
from conveyor.streams.processors.notifications import Email, Outbox
from conveyor.streams.processors.orders import sends_for
from conveyor.streams.processors.payments import answer, gateway_for
from conveyor.streams.processors.projector import write_batch
from conveyor.streams.processors.recommendations import Counter, Decision, Materializer
from conveyor.streams.runtime import Decided, WorkerSettings
from conveyor.streams.saga import OrderSaga, Timing, decide
from conveyor.streams.stock import Hold, ProductStock, announced, apply, hold_key

READY = "READY"
READY_TIMEOUT_SECONDS = 60.0
BATCH = 500
GROUP_PREFIX = "rawchain-"

# What a batch sends: each message with its cause, and an event id when it has its own.
Output = tuple[m.Message, Envelope[m.Message], uuid.UUID | None]
BatchDecider = Callable[[Sequence[Envelope[m.Message]]], Awaitable[list[Output]]]
DeciderFactory = Callable[[ServiceUrls, WorkerSettings], BatchDecider]
# Each processor's raw counterpart, by processor name.
DECIDERS: dict[str, DeciderFactory] = {}


def raw_counterpart(processor: str) -> Callable[[DeciderFactory], DeciderFactory]:
    """Declare the factory below as the raw chain's ``processor``."""

    def declare(factory: DeciderFactory) -> DeciderFactory:
        DECIDERS[processor_spec(processor).name] = factory
        return factory

    return declare


@raw_counterpart("orders")
def orders_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    sagas: dict[str, OrderSaga] = {}
    deadline_seconds = WorkerSettings().order_deadline_seconds

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        outputs: list[Output] = []
        for envelope in batch:
            key = str(envelope.payload.order_id)  # type: ignore[attr-defined]
            timing = Timing(time.time(), deadline_seconds)
            decision = decide(sagas.get(key), envelope.payload, timing)
            if decision.saga is None:
                continue
            sagas[key] = decision.saga
            outputs.extend(
                (send.message, envelope, send.event_id)
                for send in sends_for(decision.saga, decision.outputs)
            )
        return outputs

    return decide_batch


@raw_counterpart("inventory")
def inventory_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    products: dict[str, ProductStock] = {}
    holds: dict[str, Hold] = {}

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        outputs: list[Output] = []
        for envelope in batch:
            command = envelope.payload
            key = str(command.product_id)  # type: ignore[attr-defined]
            held_under = hold_key(command)
            stock = products.get(key)
            decision = apply(stock, None if held_under is None else holds.get(held_under), command)
            if decision.stock is not None:
                products[key] = decision.stock
            if held_under is not None and decision.hold is not None:
                holds[held_under] = decision.hold
            outputs.extend(
                (message, envelope, None) for message in announced(uuid.UUID(key), decision)
            )
        return outputs

    return decide_batch


@raw_counterpart("payments")
def payments_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    gateway = gateway_for(urls, settings)

    async def reply(envelope: Envelope[m.Message]) -> Output:
        match envelope.payload:
            case m.AuthorizePayment() | m.RefundPayment() as command:
                return (await answer(gateway, command), envelope, None)
        raise UndecodableMessage(f"{envelope.type} is not a payments command")

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        # Each command is one order's; the gateway's idempotency keys make them independent.
        return list(await asyncio.gather(*(reply(envelope) for envelope in batch)))

    return decide_batch


async def run(name: str, decide_batch: BatchDecider, bootstrap: str) -> None:
    topics = [spec.name for spec in PROCESSORS[name].inputs]
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=GROUP_PREFIX + name,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    producer = create_producer(bootstrap)
    await producer.start()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        await consumer.seek_to_end()
        for partition in consumer.assignment():
            await consumer.position(partition)
        print(READY, flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            if not batches:
                continue
            batch = _decodable([record for records in batches.values() for record in records])
            pending = []
            for message, cause, event_id in await decide_batch(batch):
                spec = topic_for(type(message))
                record = encode(
                    spec,
                    message,
                    event_id=event_id or derived_event_id(cause.event_id, message),
                    causation_id=cause.event_id,
                )
                pending.append(
                    await producer.send(
                        spec.name, record.value, key=record.key, headers=list(record.headers)
                    )
                )
            await asyncio.gather(*pending)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def _decodable(records: list[ConsumerRecord[Any, Any]]) -> list[Envelope[m.Message]]:
    batch = []
    for record in records:
        try:
            batch.append(decode(record.topic, record.key, record.value))
        except UndecodableMessage as exc:
            print(f"skipped {record.topic}[{record.partition}]@{record.offset}: {exc}", flush=True)
    return batch


@raw_counterpart("notifications")
def notifications_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    customers: dict[UUID, str | None] = {}
    outbox = Outbox(urls.database_url, Mailer(urls.smtp_url, SMTP_CONNECTIONS))

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        decided: list[Decided[Email | None]] = []
        for envelope in batch:
            email = None
            match envelope.payload:
                case m.OrderPlaced() as placed:
                    customers[placed.order_id] = placed.customer_email
                case m.OrderConfirmed() | m.OrderRejected() | m.OrderCancelled() as ended:
                    recipient = customers[ended.order_id]
                    email = None if recipient is None else Email.about(ended, recipient)
            decided.append(Decided(envelope, email))
        sends = await outbox.deliver(decided)
        return [(send.message, cause, send.event_id) for send, cause in sends]

    return decide_batch


@raw_counterpart("projector")
def projector_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    stores: list[tuple[asyncpg.Pool, aioredis.Redis]] = []
    status_ttl = max(1, int(settings.state_retention_seconds))

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        if not stores:
            pool = await asyncpg.create_pool(urls.database_url, min_size=1, max_size=2)
            stores.append((pool, aioredis.from_url(urls.redis_url)))
        [(pool, cache)] = stores
        await write_batch(pool, cache, batch, status_ttl)
        return []

    return decide_batch


@contextmanager
def running_chain(urls: ServiceUrls, logs_dir: Path) -> Iterator[dict[str, int]]:
    """The raw processes on ``urls``, one per processor, once each is ready; their pids by name."""
    environment = {**os.environ, **urls.environment()}
    missing = [name for name in PROCESSOR_NAMES if name not in DECIDERS]
    if missing:
        raise RuntimeError(f"the raw chain has no counterpart of {', '.join(missing)}")
    started = {
        name: Launched(
            f"the raw chain's {name}",
            [sys.executable, "-m", "benchmarks.rawchain", name],
            logs_dir / f"rawchain-{name}.log",
            environment,
        )
        for name in DECIDERS
    }
    try:
        for launched in started.values():
            launched.launch()
        for launched in started.values():
            launched.wait_logged(READY, READY_TIMEOUT_SECONDS)
        yield {name: launched.process.pid for name, launched in started.items() if launched.process}
    finally:
        for launched in started.values():
            launched.ask_to_stop()
        for launched in started.values():
            launched.stop(grace_seconds=10)


V = TypeVar("V")


class DictEntries(Generic[V]):
    """A table in a dict: no changelog, and nothing expires (the run is short)."""

    def __init__(self) -> None:
        self.entries: dict[str, V] = {}

    def get(self, key: str) -> V | None:
        return self.entries.get(key)

    def put(self, key: str, value: V, *, expires_in: float | None = None) -> None:
        self.entries[key] = value


@raw_counterpart("recommendations")
def recommendations_decider(urls: ServiceUrls, settings: WorkerSettings) -> BatchDecider:
    counter = Counter(
        baskets=DictEntries(),
        copurchases=DictEntries(),
        counted=DictEntries(),
        retention_seconds=settings.state_retention_seconds,
        half_life_seconds=settings.recommendation_half_life_seconds,
        top_n=settings.recommendation_top_n,
    )
    materializer = Materializer(
        urls.database_url,
        urls.redis_url,
        cache_ttl=max(1, int(settings.state_retention_seconds)),
    )

    async def decide_batch(batch: Sequence[Envelope[m.Message]]) -> list[Output]:
        decided: list[Decided[Decision]] = [
            Decided(envelope, counter.decide(envelope, "")) for envelope in batch
        ]
        sends = await materializer.write(decided)
        return [(send.message, cause, send.event_id) for send, cause in sends]

    return decide_batch


def main() -> None:
    [name] = sys.argv[1:]
    if name not in DECIDERS:
        sys.exit(f"usage: python -m benchmarks.rawchain {{{','.join(DECIDERS)}}}")
    urls = ServiceUrls()
    decide_batch = DECIDERS[name](urls, WorkerSettings())
    asyncio.run(run(name, decide_batch, urls.kafka_bootstrap_servers))


if __name__ == "__main__":
    main()
