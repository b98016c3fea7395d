"""What every processor shares: its Faust app, settings, decoding, dead letters and metrics.

A processor registers its handling with one of the batch forms (``decide_in_batches``,
``decide_and_act_in_batches``, ``handle_batches``, all one loop); the runtime reads the raw
records, decodes each with the shared codec, calls the processor's code, and sends any record
it cannot decode or that the code refuses to ``<topic>.dlq`` with the error and the source
offset, then carries on with the next record.

A record whose carrying out fails transiently (``TRANSIENT_ERRORS``: a gateway, mail server
or database down) is not tried again in place, which would hold up its whole partition: the
processors that talk to such services (``parks`` in their catalogue entry) park it on
``<topic>.retry`` and move on, read their retry topics beside their inputs, and handle a
parked record again once it is due (``CONVEYOR_RETRY_DELAYS_SECONDS`` apart); after the last
try it goes to ``<topic>.dlq`` with reason ``retries_exhausted``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast
from uuid import UUID

import aiosmtplib
import asyncpg
import faust
import redis.exceptions
from faust.types import EventT
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from conveyor.domain.codec import (
    decode,
    derived_event_id,
    encode,
    encode_dead_letter,
    message_key,
)
from conveyor.domain.envelope import Envelope
from conveyor.domain.errors import UndecodableMessage
from conveyor.domain.messages import Message
from conveyor.domain.processors import ProcessorName, processor_spec
from conveyor.domain.topics import (
    DEFAULT_PARTITIONS,
    RETRY_SUFFIX,
    TopicSpec,
    consumer_group,
    dead_letter_topic,
    retry_topic,
    source_topic,
    topic_for,
)
from conveyor.infra.dead_letters import record_headers, replayed_from
from conveyor.infra.errors import InfraError
from conveyor.infra.kafka import LagReader
from conveyor.infra.kafka_security import KafkaSecurity
from conveyor.infra.settings import RetentionSettings, ServiceUrls
from conveyor.infra.topic_admin import (
    compacted_topic,
    declared_topics,
    ensure_topics,
    verify_topics,
)
from conveyor.streams import metrics
from conveyor.streams.batch_wait import BatchWait
from conveyor.streams.commits import (
    WATCHDOG_INTERVAL_SECONDS,
    ConveyorApp,
    SafeCommitConsumer,
)
from conveyor.streams.errors import ServiceUnavailable
from conveyor.streams.readiness import ConveyorTableManager, Readiness
from conveyor.streams.retries import Origin, Parking, next_parking, without_parking
from conveyor.streams.state import Retention, StateFormatError, StateTable, V, acting_for

log = logging.getLogger(__name__)


class WorkerSettings(RetentionSettings):
    """How a processor runs; each field comes from ``CONVEYOR_<FIELD>`` in the environment.

    The orders and inventory processors refuse a record older than the state retention
    (dead-lettered with reason "expired"), never apply it.
    """

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore", frozen=True)

    # at_least_once is the default: every handler is idempotent by its natural key, so
    # redelivery is harmless, and it does not pay for a transaction per commit.
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    store: Literal["rocksdb", "memory"] = "rocksdb"
    data_dir: Path = Path(".conveyor/workers")
    replication_factor: int = 1
    # Who makes the declared topics. create: the processor creates and grows them at start
    # (a local run). verify: their owner (in a cluster, the Topic resources) does; the
    # processor waits for them up to topics_wait_seconds, then exits naming what is
    # missing. The operator's pods say verify. The processor's table changelogs are its own
    # either way (docs/topics.md).
    topics: Literal["create", "verify"] = "create"
    # Under the operator's liveness probe (60 s, then 6 failures 10 s apart), so a pod
    # exits with its own message rather than being killed without one.
    topics_wait_seconds: float = 90.0
    # Static group membership (Kubernetes gives each StatefulSet pod a stable one), so a
    # restarting pod gets its partitions back without a rebalance of the whole group.
    group_instance_id: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    lag_interval_seconds: float = 10.0
    commit_interval_seconds: float = 1.0
    # DEBUG also logs every saga transition (and Faust's own debug output).
    log_level: Literal["DEBUG", "INFO", "WARNING"] = "INFO"
    # How long a stop asked for by SIGTERM or SIGINT may take. A clean stop commits and
    # flushes, which waits for Kafka; with Kafka gone it would wait forever. Past this the
    # worker exits without its last commit, as a crash would (the records since are
    # processed again, harmlessly). Under the operator's pods' 60 s termination grace.
    stop_grace_seconds: float = Field(default=30.0, gt=0)
    # How soon a dead worker's partitions move to the others (Kafka's session timeout).
    # At most Faust's broker request timeout (90 s), which it refuses to start below.
    session_timeout_seconds: float = Field(default=10.0, gt=0, le=90.0)
    # Other workers of the group keep a warm copy of each table partition (Faust's
    # table_standby_replicas): a dead worker's partitions go to one that holds their table
    # already, rather than one that must restore it from the changelog first. Faust's own
    # default is 1; here they are asked for (each standby reads every changelog partition
    # it mirrors, which costs a small cluster more than most failovers do).
    table_standby_replicas: int = Field(default=0, ge=0)

    payment_timeout_seconds: float = 2.0
    payment_attempts: int = 3
    payment_backoff_seconds: float = 0.25
    circuit_failure_threshold: int = 5
    circuit_reset_seconds: float = 15.0
    # Gateway calls of one batch under way at once (each a different order's).
    payment_concurrency: int = 32

    projector_batch_size: int = 200
    projector_batch_seconds: float = 0.05

    # Records handled together: each key is read and written once per batch. A batch is
    # what has arrived a wait after its first record (up to batch_size): under load it
    # grows, and each batch's fixed costs (a producer request, a changelog flush, a wake-up
    # of every processor downstream) are shared by more records. The wait of the saga's
    # processors follows how old their records have lately been when they got to them, up
    # to batch_seconds: a few milliseconds while the machine has CPU to spare, all of it
    # when it runs short (conveyor.streams.batch_wait).
    batch_size: int = 500
    batch_seconds: float = Field(default=0.025, ge=0)
    # The longest wait for a processor no order waits on (notifications, recommendations):
    # an email a second later goes unnoticed, and a busy machine's batches then hold tens
    # of orders instead of a few.
    background_batch_seconds: float = Field(default=1.0, ge=0)
    # How often expired entries are deleted (each sends a tombstone to its changelog).
    retention_sweep_seconds: float = 60.0
    # How long a pending order may wait for its stock and payment before the saga gives up
    # (rejected timed_out); also how long compensation waits for a reply before asking again.
    order_deadline_seconds: float = 120.0
    # recommendations: how long a co-purchase takes to count half as much, and how many
    # products bought together are kept per product (the rest are forgotten).
    recommendation_half_life_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    recommendation_top_n: int = Field(default=20, ge=1, le=100)
    # The waits before each new try of a record parked on `<topic>.retry` because a service
    # it needs failed (a JSON list in the environment); after the last, `<topic>.dlq`.
    retry_delays_seconds: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)


class Refused(Exception):
    """A handler's verdict that a decoded message cannot apply; it goes to the DLQ."""


# Failures of a service the handler needs, not of the record: the record is tried again
# later (parked, or in place by processors that park nothing) rather than dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    # The server shutting down (or restarting after a crash) ends its sessions this way.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # Any answer of the mail server counts, a refused recipient too: an email waits for the
    # server rather than being dropped.
    aiosmtplib.SMTPException,
    ServiceUnavailable,
)
RETRY_CAP_SECONDS = 30.0
# A worker waiting for parked records to be due looks this often whether it is stopping or
# handing its partitions over.
PARKED_WAIT_SLICE_SECONDS = 0.5

R = TypeVar("R")


async def retrying(what: str, attempt: Callable[..., Awaitable[R]], *args: Any) -> R:
    """Run ``attempt(*args)`` until it does not fail transiently, backing off between tries."""
    delay = 0.5
    while True:
        try:
            return await attempt(*args)
        except TRANSIENT_ERRORS as exc:
            log.warning("%s failed (%r); trying again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP_SECONDS)


Event = EventT[bytes]
BatchHandler = Callable[[Sequence[Envelope[Message]]], Awaitable[None]]


@dataclass(frozen=True)
class Send:
    """A message a decision sends; ``event_id`` when it must not derive from its cause."""

    message: Message
    event_id: UUID | None = None


# A stateful decision: reads and writes ``StateTable``s, returns what to send. Synchronous,
# so nothing else runs between reading a key and writing it.
Decider = Callable[[Envelope[Message], str], Sequence[Send]]

D = TypeVar("D")


@dataclass(frozen=True)
class Decided(Generic[D]):
    """A record of a batch, and what was decided for it."""

    envelope: Envelope[Message]
    decision: D


# What to send, each with the record that causes it.
Sends = Sequence[tuple[Send, Envelope[Message]]]
# Carries out the decisions of a batch (or of one of its records): it may wait on other
# services, and is tried again (parked) while they fail, so it must be idempotent; it
# touches no table.
Actor = Callable[[Sequence[Decided[D]]], Awaitable[Sends]]


def _broker_credentials(security: KafkaSecurity) -> faust.SASLCredentials | None:
    """Faust's form of ``security``: it hands the same options to each of its own clients."""
    if security.protocol == "PLAINTEXT":
        return None
    return faust.SASLCredentials(
        username=security.username,
        password=security.password,
        mechanism=security.sasl_mechanism,
        ssl_context=security.ssl_context(),
    )


class Processor:
    """One processor: a Faust app whose consumer group is ``conveyor-<name>``."""

    def __init__(self, name: ProcessorName, urls: ServiceUrls, settings: WorkerSettings) -> None:
        self.spec = processor_spec(name)
        self.name = name
        self.urls = urls
        self.settings = settings
        self.group_id = consumer_group(name)
        datadir = settings.data_dir / name
        datadir.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if settings.group_instance_id:
            options["consumer_group_instance_id"] = settings.group_instance_id
        standby_replicas = settings.table_standby_replicas
        if settings.processing_guarantee == "exactly_once" and not self.spec.stateful:
            # Faust's transactions find each partition's producer through Faust's partition
            # assignor, which a worker without tables uses only when it asks for standbys;
            # otherwise it takes aiokafka's round robin and crashes at its first assignment
            # (KeyError on its input topic; faust-streaming #440). Without tables a standby
            # has nothing to copy, so asking for one only chooses the assignor.
            standby_replicas = max(standby_replicas, 1)
        self.app = ConveyorApp(
            self.group_id,
            broker=f"kafka://{urls.kafka_bootstrap_servers}",
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(datadir),
            processing_guarantee=settings.processing_guarantee,
            topic_partitions=DEFAULT_PARTITIONS,
            topic_replication_factor=settings.replication_factor,
            # `_provision_topics` creates every topic the processor uses, its tables'
            # changelogs included, before Faust starts; Faust's own declaration finds them.
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=settings.commit_interval_seconds,
            broker_session_timeout=settings.session_timeout_seconds,
            broker_heartbeat_interval=settings.session_timeout_seconds / 4,
            table_standby_replicas=standby_replicas,
            producer_acks=-1,
            web_enabled=False,
            broker_credentials=_broker_credentials(urls.kafka_security()),
            # Its recovery service tells how far a restore has come (readiness.py).
            TableManager=ConveyorTableManager,
            **options,
        )
        self.readiness = Readiness(name, self.app, frozenset(t.name for t in self.spec.inputs))
        self._readiness_watch: asyncio.Task[None] | None = None
        self._topics: dict[str, faust.TopicT] = {}
        self._state_tables: list[StateTable[Any]] = []
        self._retention = Retention(name, self._state_tables)
        # Under at_least_once what a handler sends goes to the producer at once (`_send`;
        # the commit still waits for the producer to flush), which takes the commit interval
        # off every hop of the saga. Under exactly_once it must wait for its transaction.
        self._publish_at_once = settings.processing_guarantee == "at_least_once"
        self._parks = bool(self.spec.parks)
        self._lag_reader = LagReader(urls.kafka_bootstrap_servers, security=urls.kafka_security())
        self.app.on_partitions_assigned.connect(self._count_rebalance)
        self.app.on_before_shutdown.connect(self._close_lag_reader)
        self.app.timer(settings.lag_interval_seconds)(self._report_lag)
        self.app.timer(WATCHDOG_INTERVAL_SECONDS)(self._refetch_stalled)
        self.app.timer(settings.retention_sweep_seconds)(self._sweep_expired)

    # -- topics ----------------------------------------------------------------------------

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                name,
                key_serializer="raw",
                value_serializer="raw",
                partitions=DEFAULT_PARTITIONS,
            )
        return self._topics[name]

    def state_table(self, name: str, model: type[V]) -> StateTable[V]:
        """A table of ``model`` values, co-partitioned with the processor's inputs."""
        if name not in self.spec.tables:
            raise ValueError(
                f"{self.name} declares the tables {self.spec.tables} in the processor "
                f"catalogue, not {name!r}"
            )
        # Values are the bytes StateTable encodes (Faust stores bytes raw): serialized
        # once, and sized exactly.
        table = self.app.Table(name, partitions=DEFAULT_PARTITIONS, key_type=str, value_type=bytes)
        state = StateTable(self.name, table, model)
        self._state_tables.append(state)
        return state

    def _flush_state(self) -> None:
        for table in self._state_tables:
            table.flush()

    # -- sending ---------------------------------------------------------------------------

    async def _send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        """Hand a record to the producer; the next offset commit waits until it is written."""
        if self._publish_at_once:
            # Straight to Faust's producer, past its channel (serializers, a future message
            # and callbacks per record), which cost more than encoding the record. Same
            # producer, same partitioner: the commit still flushes it first.
            await self.app.producer.send(topic, key, value, partition, None, list(headers))
        else:
            # Under exactly_once a record waits for its transaction, which the channel joins.
            await self.topic(topic).send(
                key=key, value=value, partition=partition, headers=list(headers)
            )

    async def emit(
        self, message: Message, *, cause: Envelope[Message] | None, event_id: UUID | None = None
    ) -> None:
        spec = topic_for(type(message))
        if event_id is None and cause is not None:
            event_id = derived_event_id(cause.event_id, message)
        record = encode(
            spec,
            message,
            event_id=event_id,
            causation_id=None if cause is None else cause.event_id,
        )
        await self._send(
            spec.name,
            key=record.key,
            value=record.value,
            headers=record.headers,
        )

    async def dead_letter(self, event: Event, error: str, reason: str) -> None:
        """Send the record to its source's DLQ; a parked record names where it first came from."""
        message = event.message
        origin, _ = _provenance(event)
        record = encode_dead_letter(
            origin.topic,
            origin.partition,
            origin.offset,
            message.key,
            message.value,
            error,
            without_parking(record_headers(message.headers)),
        )
        log.warning(
            "%s: %s[%d]@%d to the dead-letter topic: %s",
            self.name,
            origin.topic,
            origin.partition,
            origin.offset,
            error,
        )
        await self._send(
            dead_letter_topic(origin.topic),
            key=record.key,
            value=record.value,
            headers=record.headers,
        )
        metrics.EVENTS_FAILED.labels(self.name, origin.topic, reason).inc()
        metrics.DEAD_LETTERS.labels(self.name, origin.topic).inc()

    async def park(self, event: Event, error: str) -> None:
        """Park the record on its source's retry topic for its next try; after the last, DLQ.

        It keeps its key, value, headers and partition number, so the partition's table
        entries and the order of its key's parked records stay as they were.
        """
        message = event.message
        origin, previous = _provenance(event)
        parking = next_parking(
            self.settings.retry_delays_seconds, self.name, origin, previous, error
        )
        if parking is None:
            tries = 1 + len(self.settings.retry_delays_seconds)
            await self.dead_letter(
                event, f"{error} (gave up after {tries} tries)", "retries_exhausted"
            )
            return
        log.warning(
            "%s: %s[%d]@%d parked for try %d at %s: %s",
            self.name,
            origin.topic,
            origin.partition,
            origin.offset,
            parking.attempt + 1,
            parking.due.isoformat(),
            error,
        )
        await self._send(
            retry_topic(origin.topic),
            key=message.key,
            value=message.value,
            partition=message.partition,
            headers=parking.headers(record_headers(message.headers)),
        )
        metrics.RECORDS_PARKED.labels(self.name, origin.topic, str(parking.attempt)).inc()

    # -- receiving -------------------------------------------------------------------------

    def decide_in_batches(self, sources: Sequence[TopicSpec], decide: Decider) -> None:
        """Apply ``decide`` to each decodable record of ``sources``, a batch at a time.

        Per batch: the records are decided in order (a key's entries read once, from the
        second record on out of the batch's own view), every changed key is written once,
        then what the decisions send goes out, and the records are acknowledged. A record
        whose decision fails goes alone to the DLQ; the rest of its batch proceeds.
        """
        self._in_batches(sources, decide, _what_they_send, refuse_expired=True)

    def decide_and_act_in_batches(
        self,
        sources: Sequence[TopicSpec],
        decide: Callable[[Envelope[Message], str], D],
        act: Actor[D],
    ) -> None:
        """``decide_in_batches``, with the batch's decisions carried out by ``act``.

        Per batch: the records are decided as by ``decide_in_batches`` and the changed keys
        written, then ``act`` gets every decided record at once and returns what to send,
        which goes out before the records are acknowledged. When ``act`` fails, each record
        is acted on alone: one that fails transiently is parked on its topic's retry topic
        (by the processors that park records; the others try it again in place), one
        that fails otherwise goes to the DLQ. Records of any age are applied: ``act`` must
        recognize a redelivery by what it did outside (the tables may have forgotten it).
        """
        self._in_batches(sources, decide, act, refuse_expired=False)

    def handle_batches(self, sources: Sequence[TopicSpec], handler: BatchHandler) -> None:
        """Call ``handler`` with up to ``projector_batch_size`` decodable records at a time."""

        async def act(batch: Sequence[Decided[None]]) -> Sends:
            await handler([record.envelope for record in batch])
            metrics.PROJECTED_BATCH_SIZE.observe(len(batch))
            return ()

        self._in_batches(
            sources,
            _nothing_to_decide,
            act,
            size=self.settings.projector_batch_size,
            linger=self.settings.projector_batch_seconds,
            refuse_expired=False,
        )

    def _in_batches(
        self,
        sources: Sequence[TopicSpec],
        decide: Callable[[Envelope[Message], str], D],
        act: Actor[D],
        *,
        refuse_expired: bool,
        size: int | None = None,
        linger: float | None = None,
    ) -> None:
        """The batch loop: decode, decide (writing tables), flush, act, send, acknowledge.

        Batches hold up to ``size`` records (``CONVEYOR_BATCH_SIZE`` unless given), what has
        arrived a wait after the first: ``linger`` seconds if given, else
        ``CONVEYOR_BACKGROUND_BATCH_SECONDS`` for a processor no order waits on, else as long
        as the processor's records have lately been old, up to ``CONVEYOR_BATCH_SECONDS``
        (``BatchWait``).
        """
        decode = self._decode_fresh if refuse_expired else self._decode
        size = self.settings.batch_size if size is None else size
        settings = self.settings

        def batch_wait() -> BatchWait:
            if linger is not None:
                return BatchWait.fixed(linger)
            if self.spec.background:
                return BatchWait.fixed(settings.background_batch_seconds)
            return BatchWait.following_age(settings.batch_seconds)

        async def consume(stream: faust.StreamT[bytes]) -> None:
            async for events in self._batches(stream, size, batch_wait()):
                await handle_batch(events)

        async def consume_parked(stream: faust.StreamT[bytes]) -> None:
            async for events in self._batches(stream, size, batch_wait()):
                await handle_batch(await self._when_due(events))

        async def handle_batch(events: Sequence[Event]) -> None:
            if not events:
                return
            started = time.perf_counter()
            decodable = [
                (event, envelope)
                for event in events
                if (envelope := await decode(event)) is not None
            ]
            decided, failures = self._decide_batch(decodable, decide)
            self._flush_state()
            for event, error, reason in failures:
                await self.dead_letter(event, error, reason)
            metrics.BATCH_SIZE.labels(self.name).observe(len(events))
            if not decided:
                return
            done, sends = await self._act_on_batch(decided, act)
            for output, cause in sends:
                await self.emit(output.message, cause=cause, event_id=output.event_id)
            for event, record in done:
                self._count(event, record.envelope, started)

        self.app.agent(self._channel(sources), name=f"{self.name}-agent")(consume)
        parked = [retry_topic(spec) for spec in self.spec.parks if spec in sources]
        if parked:
            # An agent of its own: waiting for a parked record to be due holds up no input.
            self.app.agent(self._channel_named(parked), name=f"{self.name}-retry-agent")(
                consume_parked
            )

    async def _batches(
        self, stream: faust.StreamT[bytes], size: int, wait: BatchWait
    ) -> AsyncIterator[list[Event]]:
        """The records of ``stream``'s topics, a batch at a time, each acknowledged once its
        batch is handled.

        Read straight from the queue Faust's conductor fills rather than through the
        stream's iteration: Faust's per-record stream machinery, and ``take_events``' timer
        (which wakes an idle agent every few milliseconds), cost more than the handling. An
        idle processor waits without waking. After a batch's first record it waits for more
        as ``wait`` says. A batch whose handling raises is not acknowledged: the agent
        restarts, and the commit watchdog fetches its records again.
        """
        queue = cast(faust.ChannelT[bytes], stream.channel).queue
        while not self.app.should_stop:
            try:
                events: list[Event] = [await queue.get()]
            except StopAsyncIteration:
                # How Faust ends a waiting agent at shutdown: the end of the stream, not a
                # crash to log.
                return
            produced_at = events[0].message.timestamp
            if produced_at:
                wait.observe(produced_at, time.time())
            seconds = wait.seconds()
            if seconds > 0 and queue.qsize() + 1 < size:
                await asyncio.sleep(seconds)
            while len(events) < size and not queue.empty():
                events.append(queue.get_nowait())
            yield events
            for event in events:
                event.ack()

    async def _when_due(self, events: Sequence[Event]) -> list[Event]:
        """This processor's parked records of a batch, once every one of them is due.

        Records parked by another processor sharing the retry topic (the notifications and
        projector processors both read orders.events) are passed over.
        """
        own: list[Event] = []
        latest: datetime | None = None
        for event in events:
            _, parking = _provenance(event)
            if parking is None:
                await self.dead_letter(
                    event, "a record on a retry topic without its parking headers", "undecodable"
                )
            elif parking.processor == self.name:
                own.append(event)
                latest = parking.due if latest is None else max(latest, parking.due)
        while latest is not None and datetime.now(UTC) < latest:
            if self.app.should_stop or self.app.rebalancing:
                # Faust waits for every record in hand before it stops or hands partitions
                # over: these go back to the retry topic as they are (same try, same due
                # time) and the worker that reads it next handles them.
                for event in own:
                    await self._park_again_as_is(event)
                return []
            await asyncio.sleep(
                min(PARKED_WAIT_SLICE_SECONDS, (latest - datetime.now(UTC)).total_seconds())
            )
        for event in own:
            metrics.RECORDS_RETRIED.labels(self.name, source_topic(event.message.topic)).inc()
        return own

    async def _park_again_as_is(self, event: Event) -> None:
        message = event.message
        await self._send(
            message.topic,
            key=message.key,
            value=message.value,
            partition=message.partition,
            headers=record_headers(message.headers),
        )

    def _decide_batch(
        self,
        decodable: Sequence[tuple[Event, Envelope[Message]]],
        decide: Callable[[Envelope[Message], str], D],
    ) -> tuple[list[tuple[Event, Decided[D]]], list[tuple[Event, str, str]]]:
        """Each record's decision, in order; and the records whose decision failed, and why."""
        decided: list[tuple[Event, Decided[D]]] = []
        failures: list[tuple[Event, str, str]] = []
        # No await from the first read to the last write: nothing else touches the tables
        # meanwhile (the retention sweeper runs on the same loop).
        for event, envelope in decodable:
            key = message_key(source_topic(event.message.topic), envelope.payload)
            # The record's own partition is the changelog partition of what it writes.
            with acting_for(event):
                try:
                    decision = decide(envelope, key)
                except StateFormatError:
                    raise  # the table, not the record, is at fault: stop, say why
                except Exception as exc:
                    failures.append((event, *self._failure(envelope, exc)))
                    continue
            decided.append((event, Decided(envelope, decision)))
        return decided, failures

    async def _act_on_batch(
        self, decided: list[tuple[Event, Decided[D]]], act: Actor[D]
    ) -> tuple[list[tuple[Event, Decided[D]]], Sends]:
        """``act`` on the batch; when it fails, on each record alone, dead-lettering failures.

        Returns the records acted on and what to send.
        """
        if self._parks:
            return await self._act_or_park(decided, act)
        try:
            sends = await retrying(
                f"{self.name}: a batch of {len(decided)}", act, [record for _, record in decided]
            )
        except Exception:
            log.exception("%s: a batch failed; acting on its records one by one", self.name)
        else:
            return decided, sends
        done: list[tuple[Event, Decided[D]]] = []
        all_sends: list[tuple[Send, Envelope[Message]]] = []
        for event, record in decided:
            try:
                all_sends.extend(
                    await retrying(f"{self.name}: {record.envelope.type}", act, [record])
                )
            except Exception as exc:
                await self.dead_letter(event, *self._failure(record.envelope, exc))
            else:
                done.append((event, record))
        return done, all_sends

    async def _act_or_park(
        self, decided: list[tuple[Event, Decided[D]]], act: Actor[D]
    ) -> tuple[list[tuple[Event, Decided[D]]], Sends]:
        """``act`` on the batch, or else on each record alone: a record that fails transiently
        is parked, one that fails otherwise dead-lettered; the rest are done.

        Once a record is parked, the later records of its key in the batch are parked behind
        it without a try, so they are tried again in the order they came.
        """
        try:
            return decided, await act([record for _, record in decided])
        except Exception as exc:
            # A batch of one has had its try; a larger one is tried record by record.
            alone_failure = exc if len(decided) == 1 else None
            if alone_failure is None:
                log.warning(
                    "%s: a batch failed (%r); acting on its records one by one", self.name, exc
                )
        done: list[tuple[Event, Decided[D]]] = []
        all_sends: list[tuple[Send, Envelope[Message]]] = []
        parked_keys: set[str] = set()
        for event, record in decided:
            key = message_key(source_topic(event.message.topic), record.envelope.payload)
            if key in parked_keys:
                await self.park(
                    event, f"{record.envelope.type} waits behind a parked record of its key"
                )
                continue
            try:
                if alone_failure is not None:
                    raise alone_failure
                all_sends.extend(await act([record]))
            except TRANSIENT_ERRORS as exc:
                parked_keys.add(key)
                await self.park(event, f"{record.envelope.type} failed: {exc!r}")
            except Exception as exc:
                await self.dead_letter(event, *self._failure(record.envelope, exc))
            else:
                done.append((event, record))
        return done, all_sends

    def _failure(self, envelope: Envelope[Message], exc: Exception) -> tuple[str, str]:
        """The error and the reason a record goes to the DLQ with, for what its handling raised."""
        if isinstance(exc, (Refused, UndecodableMessage)):
            return f"{envelope.type} refused: {exc}", "refused"
        # A bug must not stop the partition: the record is kept in the DLQ.
        log.exception("%s: %s failed", self.name, envelope.type, exc_info=exc)
        return f"{envelope.type} failed: {exc!r}", "failed"

    def _channel(self, sources: Sequence[TopicSpec]) -> faust.TopicT:
        return self._channel_named([spec.name for spec in sources])

    def _channel_named(self, names: Sequence[str]) -> faust.TopicT:
        return self.app.topic(
            *names,
            key_serializer="raw",
            value_serializer="raw",
            partitions=DEFAULT_PARTITIONS,
        )

    async def _decode(self, event: Event) -> Envelope[Message] | None:
        message = event.message
        try:
            envelope = decode(source_topic(message.topic), message.key, message.value)
        except UndecodableMessage as exc:
            await self.dead_letter(event, str(exc), "undecodable")
            return None
        return envelope

    async def _decode_fresh(self, event: Event) -> Envelope[Message] | None:
        """``_decode``, and a record older than the state retention is dead-lettered.

        For deciders, whose only defence against a redelivery is a table entry that expires
        with the retention: applying an older record could count it twice.
        """
        envelope = await self._decode(event)
        if envelope is None:
            return None
        age = (datetime.now(UTC) - envelope.occurred_at).total_seconds()
        if age <= self.settings.state_retention_seconds:
            return envelope
        await self.dead_letter(
            event,
            f"{envelope.type} from {envelope.occurred_at.isoformat()} is older than the state "
            f"retention ({self.settings.state_retention_seconds:.0f} s): the entries that "
            "would recognize it as a redelivery may have expired, so it is not applied",
            "expired",
        )
        return None

    def _count(self, event: Event, envelope: Envelope[Message], started: float) -> None:
        metrics.EVENTS_PROCESSED.labels(self.name, event.message.topic, envelope.type).inc()
        if replayed_from(record_headers(event.message.headers)) is not None:
            metrics.DEAD_LETTERS_REPLAYED.labels(self.name, event.message.topic).inc()
        metrics.PROCESSING_SECONDS.labels(self.name, envelope.type).observe(
            time.perf_counter() - started
        )

    # -- housekeeping ----------------------------------------------------------------------

    async def _count_rebalance(self, *_: Any, **__: Any) -> None:
        metrics.REBALANCES.labels(self.name).inc()

    async def _sweep_expired(self) -> None:
        if not self._state_tables or self.app.rebalancing:
            return
        # TableManagerT leaves out the recovery service its one implementation has.
        if self.app.tables.recovery.in_recovery:  # type: ignore[attr-defined]
            return
        actives = set(self.app.assignor.assigned_actives())
        removed = self._retention.sweep(actives)
        if removed:
            log.info("%s: %d expired table entries removed", self.name, removed)

    async def _refetch_stalled(self) -> None:
        consumer = self.app.consumer
        if isinstance(consumer, SafeCommitConsumer) and not self.app.rebalancing:
            await consumer.refetch_stalled()

    async def _report_lag(self) -> None:
        # Polled with the lag: a recovery that never ends (faust-streaming #432, #74) shows as
        # this gauge stuck at 1 (ConveyorTableRecoveryStuck).
        # TableManagerT leaves out the recovery service its one implementation has.
        recovering = self.app.tables.recovery.in_recovery  # type: ignore[attr-defined]
        metrics.TABLE_RECOVERING.labels(self.name).set(1 if recovering else 0)
        try:
            lag = await self._lag_reader.lag(self.group_id)
        except InfraError as exc:
            log.warning("%s: consumer lag unavailable: %s", self.name, exc)
            return
        for (topic, partition), records in lag.items():
            metrics.CONSUMER_LAG.labels(self.name, topic, str(partition)).set(records)

    async def _close_lag_reader(self, *_: Any, **__: Any) -> None:
        await self._lag_reader.close()
        if self._readiness_watch is not None:
            self._readiness_watch.cancel()

    # -- running ---------------------------------------------------------------------------

    async def _provision_topics(self) -> None:
        """The declared topics, made or waited for, and this processor's table changelogs,
        made, before Faust subscribes.

        Faust would create the changelogs itself, but after its consumer has fetched metadata,
        and then refuses the first write with PartitionsMismatch; made here, they exist first.
        """
        bootstrap = self.urls.kafka_bootstrap_servers
        security = self.urls.kafka_security()
        replication = self.settings.replication_factor
        declared = declared_topics(replication)
        changelogs = [
            compacted_topic(
                table.changelog_topic.get_topic_name(),
                table.partitions or DEFAULT_PARTITIONS,
                replication,
            )
            for table in self.app.tables.values()
        ]
        if self.settings.topics == "verify":
            await verify_topics(
                bootstrap, declared, self.settings.topics_wait_seconds, security=security
            )
            owned = changelogs
        else:
            owned = [*declared, *changelogs]
        if owned:
            await ensure_topics(bootstrap, owned, security=security)

    def run(self) -> None:
        """Provision the declared topics, expose metrics, and run the worker until stopped."""
        # One loop for provisioning and for the worker, which takes the current loop.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._provision_topics())
        # Not a Faust timer: those start only once the first restore is over.
        self._readiness_watch = loop.create_task(self.readiness.watch())
        metrics.serve_metrics(
            self.settings.metrics_host, self.settings.metrics_port, self.readiness.answer
        )
        worker = DeadlinedWorker(
            self.app,
            loglevel=self.settings.log_level,
            redirect_stdouts=False,
            processor=self.name,
            grace_seconds=self.settings.stop_grace_seconds,
        )
        worker.execute_from_commandline()


class DeadlinedWorker(faust.Worker):
    """Faust's worker, whose stop on a signal ends within ``grace_seconds`` however it goes."""

    def __init__(self, *args: Any, processor: str, grace_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._processor = processor
        self._grace_seconds = grace_seconds
        self._deadline: threading.Timer | None = None

    def _repr_name(self) -> str:
        # Its log lines read as Faust's worker's do (`[^Worker]: Ready`, which tools wait for).
        return "Worker"

    def _schedule_shutdown(self, received: signal.Signals) -> None:
        if self._deadline is None:
            # A thread of its own: the loop may be what is stuck.
            self._deadline = threading.Timer(self._grace_seconds, self._give_up, (received,))
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(received)

    def _give_up(self, received: signal.Signals) -> None:
        log.error(
            "%s: still stopping %.0f s after %s, most likely waiting for Kafka (is it "
            "reachable?); exiting without the last commit: what was processed since the "
            "commit before is processed again on the next start",
            self._processor,
            self._grace_seconds,
            received.name,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)


def _provenance(event: Event) -> tuple[Origin, Parking | None]:
    """Where the record first came from, and its parking when it was read from a retry topic."""
    message = event.message
    if message.topic.endswith(RETRY_SUFFIX):
        parking = Parking.read(dict(record_headers(message.headers)))
        if parking is not None:
            return parking.origin, parking
    return Origin(source_topic(message.topic), message.partition, message.offset), None


async def _what_they_send(decided: Sequence[Decided[Sequence[Send]]]) -> Sends:
    return [(send, record.envelope) for record in decided for send in record.decision]


def _nothing_to_decide(envelope: Envelope[Message], key: str) -> None:
    return None
