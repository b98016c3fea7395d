"""Dead letters: read what a ``<topic>.dlq`` holds, and send letters back to their source once.

A replay re-sends the original record (key, value and headers, byte for byte) to the
partition it was read from, adding provenance headers that say which dead letter it was and
when it was replayed. Every replay is recorded in the compacted topic ``conveyor.dlq-replays``,
keyed by the dead letter's topic, partition and offset: any operator, from any machine, sees
which letters went back, and a letter recorded there is never sent again. The record is sent
first and recorded once Kafka acknowledged it, so a replay interrupted between the two sends
that one letter again on the next run: the same bytes, which every processor recognizes as a
redelivery by its natural key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from conveyor.domain.codec import DeadLetter, decode_dead_letter
from conveyor.domain.envelope import utc_now
from conveyor.domain.errors import UndecodableMessage
from conveyor.domain.topics import DEAD_LETTER_SUFFIX
from conveyor.infra.errors import DeadLetterNotFound, KafkaUnavailable
from conveyor.infra.kafka import create_producer
from conveyor.infra.kafka_security import PLAINTEXT, KafkaSecurity
from conveyor.infra.topic_admin import compacted_topic, topic_admin

REPLAY_LEDGER_TOPIC = "conveyor.dlq-replays"
# On a replayed record: "<dlq topic>:<partition>:<offset>" of the dead letter it came from,
# and when it was replayed (RFC 3339).
REPLAYED_FROM_HEADER = "conveyor-replayed-from"
REPLAYED_AT_HEADER = "conveyor-replayed-at"
_PROVENANCE_HEADERS = (REPLAYED_FROM_HEADER, REPLAYED_AT_HEADER)

Headers = tuple[tuple[str, bytes], ...]


def record_headers(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> Headers:
    """A record's headers as (name, value) pairs, whichever form the client gave them in."""
    if headers is None:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), bytes(value)) for name, value in pairs)


def replayed_from(headers: Headers) -> str | None:
    """The dead letter a record was replayed from, or None for a record never dead-lettered."""
    for name, value in headers:
        if name == REPLAYED_FROM_HEADER:
            return value.decode(errors="replace")
    return None


class Replay(BaseModel):
    """The replay ledger's record of one dead letter sent back to its source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dead_letter_topic: str
    partition: int
    offset: int
    source_topic: str
    source_partition: int
    # Where the replayed record landed.
    replayed_offset: int
    replayed_at: AwareDatetime

    @property
    def ledger_key(self) -> str:
        return _ledger_key(self.dead_letter_topic, self.partition, self.offset)


def _ledger_key(dead_letter_topic: str, partition: int, offset: int) -> str:
    return f"{dead_letter_topic}:{partition}:{offset}"


@dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic, with its replay if it was replayed."""

    dead_letter_topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    headers: Headers
    raw_value: bytes | None
    # None when the record is not a dead letter Conveyor wrote (then it cannot be replayed).
    letter: DeadLetter | None
    replay: Replay | None

    @property
    def position(self) -> str:
        """PARTITION:OFFSET, as `conveyor dlq` names a dead letter."""
        return f"{self.partition}:{self.offset}"


def dead_letter_topic_of(topic: str) -> str:
    """The dead-letter topic of ``topic``, given as the source or as the dead-letter topic."""
    return topic if topic.endswith(DEAD_LETTER_SUFFIX) else topic + DEAD_LETTER_SUFFIX


async def read_dead_letters(
    bootstrap_servers: str, topic: str, *, security: KafkaSecurity = PLAINTEXT
) -> list[DeadLetterRecord]:
    """Every dead letter of ``topic`` (a source topic, or its ``.dlq``), oldest first per
    partition, each with its replay from the ledger."""
    dlq = dead_letter_topic_of(topic)
    records = await _read_to_end(bootstrap_servers, dlq, missing_ok=False, security=security)
    replays = await read_replays(bootstrap_servers, security=security)
    return [
        DeadLetterRecord(
            dead_letter_topic=dlq,
            partition=record.partition,
            offset=record.offset,
            timestamp=datetime.fromtimestamp(record.timestamp / 1000, tz=UTC),
            key=record.key,
            headers=record_headers(record.headers),
            raw_value=record.value,
            letter=_letter(record.value),
            replay=replays.get(_ledger_key(dlq, record.partition, record.offset)),
        )
        for record in records
    ]


def _letter(value: bytes | None) -> DeadLetter | None:
    if value is None:
        return None
    try:
        return decode_dead_letter(value)
    except UndecodableMessage:
        return None


async def read_replays(
    bootstrap_servers: str, *, security: KafkaSecurity = PLAINTEXT
) -> dict[str, Replay]:
    """The replay ledger: the newest record per dead letter (none before the first replay)."""
    replays: dict[str, Replay] = {}
    for record in await _read_to_end(
        bootstrap_servers, REPLAY_LEDGER_TOPIC, missing_ok=True, security=security
    ):
        if record.value is None:
            continue
        try:
            replay = Replay.model_validate_json(record.value)
        except ValidationError:
            continue  # not ours: the ledger's records are all written by `replay_dead_letters`
        replays[replay.ledger_key] = replay
    return replays


def select(
    topic: str, letters: Sequence[DeadLetterRecord], positions: Iterable[str]
) -> list[DeadLetterRecord]:
    """The dead letters of ``topic`` at ``positions`` (PARTITION:OFFSET, or OFFSET when only
    one partition has it), in the order given; DeadLetterNotFound names any not there."""
    dlq = dead_letter_topic_of(topic)
    listing = f"`conveyor dlq list {dlq.removesuffix(DEAD_LETTER_SUFFIX)}` shows the ones it has"
    by_position = {letter.position: letter for letter in letters}
    chosen: list[DeadLetterRecord] = []
    for position in positions:
        if ":" in position:
            found = by_position.get(position)
            if found is None:
                raise DeadLetterNotFound(
                    f"{dlq} has no dead letter at {position} (PARTITION:OFFSET); {listing}"
                )
            chosen.append(found)
            continue
        matching = [letter for letter in letters if str(letter.offset) == position]
        if not matching:
            raise DeadLetterNotFound(
                f"{dlq} has no dead letter at offset {position!r} in any partition; {listing}"
            )
        if len(matching) > 1:
            raise DeadLetterNotFound(
                f"offset {position} of {dlq} is in partitions "
                f"{', '.join(str(letter.partition) for letter in matching)}: name one as "
                f"PARTITION:OFFSET, e.g. {matching[0].position}"
            )
        chosen.append(matching[0])
    return chosen


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one dead letter asked to be replayed."""

    dead_letter: DeadLetterRecord
    # "replayed", "would replay" (a dry run), "already replayed", or "not replayable".
    result: str
    replay: Replay | None = None
    reason: str = ""


Progress = Callable[[int, int, ReplayOutcome], Awaitable[None] | None]


async def replay_dead_letters(
    bootstrap_servers: str,
    letters: Sequence[DeadLetterRecord],
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[ReplayOutcome]:
    """Send each of ``letters`` back to its source topic and partition, once.

    A letter the ledger already holds is skipped (replaying twice sends once); a record that
    is not a Conveyor dead letter, or whose source partition no longer exists, is skipped
    with the reason. A dry run sends and records nothing. ``progress(done, total, outcome)``
    is called after each letter.
    """
    # Read afresh, not taken from the letters: another operator may have replayed since.
    replays = await read_replays(bootstrap_servers, security=security) if letters else {}
    outcomes: list[ReplayOutcome] = []
    producer = (
        None if dry_run or not letters else create_producer(bootstrap_servers, security=security)
    )
    try:
        if producer is not None:
            await _ensure_ledger(bootstrap_servers, letters[0].dead_letter_topic, security)
            await producer.start()
        for done, dead in enumerate(letters, start=1):
            key = _ledger_key(dead.dead_letter_topic, dead.partition, dead.offset)
            outcome = await _replay_one(producer, dead, replays.get(key))
            if outcome.replay is not None and outcome.result == "replayed":
                replays[key] = outcome.replay
            outcomes.append(outcome)
            if progress is not None:
                reported = progress(done, len(letters), outcome)
                if reported is not None:
                    await reported
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(
            f"Kafka at {bootstrap_servers} failed during the replay, after "
            f"{sum(o.result == 'replayed' for o in outcomes)} letters were replayed and "
            f"recorded: {exc!r}; run the same replay again to send the rest"
        ) from exc
    finally:
        if producer is not None:
            await producer.stop()
    return outcomes


async def _replay_one(
    producer: Any, dead: DeadLetterRecord, earlier: Replay | None
) -> ReplayOutcome:
    if earlier is not None:
        return ReplayOutcome(dead, "already replayed", earlier)
    letter = dead.letter
    if letter is None:
        return ReplayOutcome(
            dead, "not replayable", reason="the record is not a dead letter Conveyor wrote"
        )
    if producer is None:
        return ReplayOutcome(dead, "would replay")
    partitions = await producer.partitions_for(letter.source_topic)
    if letter.partition not in partitions:
        return ReplayOutcome(
            dead,
            "not replayable",
            reason=f"{letter.source_topic} has no partition {letter.partition} any more",
        )
    replayed_at = utc_now()
    headers = [
        *(
            (name, value)
            for name, value in letter.original_headers
            if name not in _PROVENANCE_HEADERS
        ),
        (
            REPLAYED_FROM_HEADER,
            _ledger_key(dead.dead_letter_topic, dead.partition, dead.offset).encode(),
        ),
        (REPLAYED_AT_HEADER, replayed_at.isoformat().encode()),
    ]
    sent = await producer.send_and_wait(
        letter.source_topic,
        letter.original_value,
        key=letter.original_key,
        partition=letter.partition,
        headers=headers,
    )
    replay = Replay(
        dead_letter_topic=dead.dead_letter_topic,
        partition=dead.partition,
        offset=dead.offset,
        source_topic=letter.source_topic,
        source_partition=letter.partition,
        replayed_offset=sent.offset,
        replayed_at=replayed_at,
    )
    await producer.send_and_wait(
        REPLAY_LEDGER_TOPIC, replay.model_dump_json().encode(), key=replay.ledger_key.encode()
    )
    return ReplayOutcome(dead, "replayed", replay)


async def _ensure_ledger(bootstrap_servers: str, like: str, security: KafkaSecurity) -> None:
    """Create the replay ledger unless it exists, replicated like the topic ``like``.

    One partition keeps the ledger in the order it was written; compaction keeps one record
    per dead letter, so it grows with the letters ever replayed, not with time.
    """
    async with topic_admin(bootstrap_servers, security=security) as admin:
        state = await admin.describe(like)
        replicas = 1 if state is None else state.replication_factor
        await admin.ensure([compacted_topic(REPLAY_LEDGER_TOPIC, 1, replicas)])


async def _read_to_end(
    bootstrap_servers: str, topic: str, *, missing_ok: bool, security: KafkaSecurity
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record ``topic`` holds up to its end as of now, partition by partition."""
    async with topic_admin(bootstrap_servers, security=security) as admin:
        count = (await admin.partition_counts([topic])).get(topic)
        if count is None:
            if missing_ok:
                return []
            sources = sorted(
                name.removesuffix(DEAD_LETTER_SUFFIX)
                for name in await admin.names()
                if name.endswith(DEAD_LETTER_SUFFIX)
            )
            raise DeadLetterNotFound(
                f"there is no topic {topic} at {bootstrap_servers}; the topics with dead "
                f"letters are {', '.join(sources)}"
            )
    partitions = [TopicPartition(topic, partition) for partition in range(count)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=15_000,
        **security.client_options(),
    )
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in remaining:
            consumer.seek(tp, starts[tp])
        records: list[ConsumerRecord[bytes, bytes]] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, fetched in batch.items():
                records.extend(record for record in fetched if record.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return sorted(records, key=lambda record: (record.partition, record.offset))
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(
            f"could not read {topic} at {bootstrap_servers}: {exc!r}; check "
            "KAFKA_BOOTSTRAP_SERVERS or start the local stack with `conveyor dev up`"
        ) from exc
    finally:
        await consumer.stop()


def describe(dead: DeadLetterRecord) -> dict[str, Any]:
    """One dead letter whole, as `conveyor dlq show` prints it: the value decoded when it is
    JSON, bytes that are not UTF-8 as base64."""
    letter = dead.letter
    described: dict[str, Any] = {
        "dead_letter": f"{dead.dead_letter_topic} {dead.position}",
        "written_at": dead.timestamp.isoformat(),
        "headers": {name: _text(value) for name, value in dead.headers},
    }
    if letter is None:
        described["error"] = "not a dead letter Conveyor wrote; its raw value follows"
        described["value"] = _text(dead.raw_value)
        return described
    described.update(
        source=f"{letter.source_topic} {letter.partition}:{letter.offset}",
        failed_at=letter.failed_at.isoformat(),
        error=letter.error,
        key=_text(letter.original_key),
        original_headers={name: _text(value) for name, value in letter.original_headers},
        value=_decoded(letter.original_value),
        replayed=None if dead.replay is None else dead.replay.model_dump(mode="json"),
    )
    return described


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode()


def _decoded(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _text(raw)
