"""The one codec the edge and the processors share: messages to Kafka records and back.

A record's value is the JSON envelope, its key the message's natural key (order_id or
product_id), and its headers repeat the type and schema version for tools that do not parse
values. ``decode`` never raises anything but ``UndecodableMessage``, whatever the bytes, so a
processor can send anything it cannot read to the dead-letter topic and carry on.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from conveyor.domain.envelope import (
    CURRENT_SCHEMA_VERSION,
    READABLE_SCHEMA_VERSIONS,
    Envelope,
    utc_now,
)
from conveyor.domain.errors import MessageNotAllowedOnTopic, UndecodableMessage
from conveyor.domain.messages import MESSAGE_TYPES, Message
from conveyor.domain.topics import TopicSpec, resolve, topic_for

MESSAGE_CLASSES: dict[str, type[Message]] = {
    message_type.model_fields["type"].default: message_type for message_type in MESSAGE_TYPES
}


def _parametrized(message_class: type[Message]) -> type[Envelope[Message]]:
    parametrized: type[Envelope[Message]] = cast(Any, Envelope)[message_class]
    return parametrized


# Looked up once: parametrizing on every record costs as much as a fifth of a decode.
_ENVELOPE_CLASSES = {message_class: _parametrized(message_class) for message_class in MESSAGE_TYPES}


def envelope_class(message_class: type[Message]) -> type[Envelope[Message]]:
    """The envelope parametrized with the concrete message class.

    Parametrizing matters: an ``Envelope[Message]`` would serialize only the fields of the
    base class and validate any payload as the base class.
    """
    return _ENVELOPE_CLASSES.get(message_class) or _parametrized(message_class)


@dataclass(frozen=True)
class EncodedRecord:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    # The envelope's event id; dead letters carry none of their own.
    event_id: UUID | None = None


def message_key(topic: TopicSpec | str, message: Message) -> str:
    """The message's natural key on ``topic``, which is also its record key."""
    return str(getattr(message, resolve(topic).key_field))


def derived_event_id(cause_event_id: UUID, message: Message) -> UUID:
    """The id of ``message`` sent because of the event ``cause_event_id``.

    Derived, not random: handling a redelivered record again sends records with the same
    ids, which consumers that deduplicate by event id recognize.
    """
    return uuid.uuid5(
        cause_event_id, f"{message.type}:{message_key(topic_for(type(message)), message)}"
    )


def encode(
    topic: TopicSpec | str,
    message: Message,
    *,
    event_id: UUID | None = None,
    causation_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> EncodedRecord:
    spec = resolve(topic)
    if not spec.allows(type(message)):
        raise MessageNotAllowedOnTopic(
            f"{message.type} does not travel on {spec.name}; "
            f"it carries {[t.__name__ for t in spec.message_types]}"
        )
    key = message_key(spec, message)
    envelope_fields: dict[str, Any] = {
        "type": message.type,
        "payload": message,
        "causation_id": causation_id,
        "correlation_id": UUID(key),
    }
    if event_id is not None:
        envelope_fields["event_id"] = event_id
    if occurred_at is not None:
        envelope_fields["occurred_at"] = occurred_at
    envelope = envelope_class(type(message))(**envelope_fields)
    return EncodedRecord(
        key=key.encode(),
        value=envelope.model_dump_json().encode(),
        headers=(
            ("type", message.type.encode()),
            ("schema_version", str(CURRENT_SCHEMA_VERSION).encode()),
        ),
        event_id=envelope.event_id,
    )


def decode(topic: TopicSpec | str, key: bytes | None, value: bytes | None) -> Envelope[Message]:
    """The envelope in a record read from ``topic``; UndecodableMessage says what is wrong."""
    spec = resolve(topic)
    if value is None:
        raise UndecodableMessage("the record has no value (a tombstone)")
    try:
        raw = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise UndecodableMessage(f"the value is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise UndecodableMessage(f"the value is JSON {type(raw).__name__}, not an envelope object")
    type_name = raw.get("type")
    message_class = MESSAGE_CLASSES.get(type_name) if isinstance(type_name, str) else None
    if message_class is None:
        raise UndecodableMessage(f"unknown message type {type_name!r}")
    version = raw.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise UndecodableMessage(
            f"{type_name} schema version {version!r} is not one this code reads "
            f"({sorted(READABLE_SCHEMA_VERSIONS)})"
        )
    if not spec.allows(message_class):
        raise UndecodableMessage(f"{type_name} does not belong on {spec.name}")
    try:
        envelope = envelope_class(message_class).model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'envelope'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise UndecodableMessage(f"invalid {type_name}: {problems}") from exc
    if envelope.payload.type != envelope.type:
        raise UndecodableMessage(
            f"the envelope says {envelope.type} but the payload is {envelope.payload.type}"
        )
    expected_key = message_key(spec, envelope.payload)
    if key is not None and key != expected_key.encode():
        raise UndecodableMessage(
            f"the record key {key[:64]!r} is not the payload's {spec.key_field} {expected_key}"
        )
    return envelope


# -- dead letters ------------------------------------------------------------------------


class DeadLetter(BaseModel):
    """A record a processor could not handle, kept whole with why and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_topic: str
    partition: int
    offset: int
    # The original bytes, base64-encoded so that nothing of them is lost.
    key: str | None
    value: str | None
    error: str
    failed_at: AwareDatetime
    # The record's headers, each value base64-encoded; empty in letters written before they
    # were kept.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def original_key(self) -> bytes | None:
        return None if self.key is None else base64.b64decode(self.key)

    @property
    def original_value(self) -> bytes | None:
        return None if self.value is None else base64.b64decode(self.value)

    @property
    def original_headers(self) -> tuple[tuple[str, bytes], ...]:
        return tuple((name, base64.b64decode(value)) for name, value in self.headers)


def encode_dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: str,
    headers: Sequence[tuple[str, bytes]] = (),
) -> EncodedRecord:
    letter = DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key=None if key is None else base64.b64encode(key).decode(),
        value=None if value is None else base64.b64encode(value).decode(),
        error=error,
        failed_at=utc_now(),
        headers=tuple((name, base64.b64encode(value).decode()) for name, value in headers),
    )
    return EncodedRecord(
        # Keyed like its source, so it lands on the same partition number.
        key=key or b"",
        value=letter.model_dump_json().encode(),
        headers=(("error", error[:1000].encode()), ("source_topic", source_topic.encode())),
    )


def decode_dead_letter(value: bytes) -> DeadLetter:
    try:
        return DeadLetter.model_validate_json(value)
    except ValidationError as exc:
        raise UndecodableMessage(f"not a dead letter: {exc.error_count()} problems") from exc
