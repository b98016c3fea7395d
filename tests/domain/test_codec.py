"""Every message survives the trip through Kafka bytes; bad bytes are named, never raised raw."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from conveyor.domain import messages as m
from conveyor.domain.codec import decode, decode_dead_letter, encode, encode_dead_letter
from conveyor.domain.errors import MessageNotAllowedOnTopic, UndecodableMessage
from conveyor.domain.topics import TOPICS, dead_letter_topic, topic_for
from tests.domain.samples import ORDER, PRODUCT, every_message, place_order

SAMPLES = every_message()


def test_the_samples_cover_every_message_type() -> None:
    assert {type(sample) for sample in SAMPLES} == set(m.MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: message.type)
def test_every_message_comes_back_unchanged_from_its_topic(message: m.Message) -> None:
    topic = topic_for(type(message))
    cause = uuid.uuid4()
    record = encode(topic, message, causation_id=cause)
    envelope = decode(topic, record.key, record.value)
    assert envelope.payload == message
    assert type(envelope.payload) is type(message)
    assert envelope.type == message.type
    assert envelope.causation_id == cause
    assert envelope.occurred_at.utcoffset() is not None
    assert record.key == str(getattr(message, topic.key_field)).encode()
    assert dict(record.headers)["type"] == message.type.encode()


def test_an_order_of_a_customer_with_no_verified_address_travels_without_one() -> None:
    """Such an order's e-mails are sent nowhere; an address must be named or null, never left
    out, so a producer cannot forget it."""
    record = encode("orders.commands", place_order(customer_email=None))
    assert json.loads(record.value)["payload"]["customer_email"] is None
    payload = decode("orders.commands", record.key, record.value).payload
    assert isinstance(payload, m.PlaceOrder)
    assert payload.customer_email is None
    omitted = json.loads(record.value)
    del omitted["payload"]["customer_email"]
    with pytest.raises(UndecodableMessage, match="customer_email"):
        decode("orders.commands", record.key, json.dumps(omitted).encode())


def test_each_message_type_travels_on_exactly_one_topic_that_has_its_key() -> None:
    for message_type in m.MESSAGE_TYPES:
        owners = [spec for spec in TOPICS.values() if spec.allows(message_type)]
        assert len(owners) == 1, message_type
        assert owners[0].key_field in message_type.model_fields


def test_every_topic_has_the_same_partition_count_so_tables_co_partition() -> None:
    assert len({spec.partitions for spec in TOPICS.values()}) == 1


def test_dead_letter_topics_are_named_after_their_source() -> None:
    assert dead_letter_topic("orders.commands") == "orders.commands.dlq"


def test_the_same_message_sent_twice_keeps_its_event_id_when_told() -> None:
    event_id = uuid.uuid4()
    first = encode("orders.commands", place_order(), event_id=event_id)
    second = encode("orders.commands", place_order(), event_id=event_id)
    assert decode("orders.commands", first.key, first.value).event_id == event_id
    assert decode("orders.commands", second.key, second.value).event_id == event_id


def test_a_message_is_not_written_to_a_topic_that_does_not_carry_it() -> None:
    with pytest.raises(MessageNotAllowedOnTopic, match="PlaceOrder does not travel on"):
        encode("orders.events", place_order())


def test_a_message_read_from_the_wrong_topic_is_undecodable() -> None:
    record = encode("orders.commands", place_order())
    with pytest.raises(UndecodableMessage, match=r"does not belong on payments\.commands"):
        decode("payments.commands", record.key, record.value)


def test_a_record_whose_key_is_not_its_payloads_key_is_undecodable() -> None:
    record = encode("orders.commands", place_order())
    with pytest.raises(UndecodableMessage, match="record key"):
        decode("orders.commands", str(PRODUCT).encode(), record.value)


def test_a_schema_version_this_code_cannot_read_is_refused_not_guessed() -> None:
    record = encode("orders.commands", place_order())
    raw = json.loads(record.value)
    raw["schema_version"] = 2
    with pytest.raises(UndecodableMessage, match="schema version 2"):
        decode("orders.commands", record.key, json.dumps(raw).encode())


def test_an_invalid_payload_is_undecodable_with_the_field_named() -> None:
    record = encode("orders.commands", place_order())
    raw = json.loads(record.value)
    raw["payload"]["items"][0]["quantity"] = 0
    with pytest.raises(UndecodableMessage, match=r"payload\.items\.0\.quantity"):
        decode("orders.commands", record.key, json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe not utf-8", "not JSON"),
        (b"[1, 2]", "not an envelope"),
        (b'{"type": "Teleport"}', "unknown message type"),
        (b'{"type": 7}', "unknown message type"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_undecodable_bytes_say_why(value: bytes | None, reason: str) -> None:
    with pytest.raises(UndecodableMessage, match=reason):
        decode("orders.commands", str(ORDER).encode(), value)


def test_no_bytes_whatsoever_raise_anything_but_undecodable_message() -> None:
    generator = random.Random(20261124)
    real = [encode(topic_for(type(s)), s).value for s in SAMPLES]
    candidates: list[bytes] = [generator.randbytes(generator.randint(0, 200)) for _ in range(300)]
    for value in real:
        cut = generator.randint(0, len(value))
        candidates += [value[:cut], value[:cut] + value[cut + 1 :], value.replace(b'"', b"'", 1)]
        flipped = bytearray(value)
        flipped[generator.randrange(len(value))] ^= 0xFF
        candidates.append(bytes(flipped))
    decoded = 0
    for value in candidates:
        for topic in TOPICS:
            try:
                decode(topic, None, value)
                decoded += 1
            except UndecodableMessage:
                pass
    # Some mutations happen to stay valid; everything else was refused with our error.
    assert decoded < len(candidates) * len(TOPICS)


def test_a_dead_letter_keeps_the_original_bytes_whole() -> None:
    generator = random.Random(7)
    key, value = generator.randbytes(16), generator.randbytes(300)
    record = encode_dead_letter("orders.commands", 3, 1234, key, value, "not JSON")
    letter = decode_dead_letter(record.value)
    assert letter.original_key == key
    assert letter.original_value == value
    assert (letter.source_topic, letter.partition, letter.offset) == ("orders.commands", 3, 1234)
    assert letter.error == "not JSON"
    assert record.key == key


def test_a_dead_letter_keeps_the_original_headers_for_a_replay() -> None:
    headers = (("type", b"AdjustStock"), ("binary", bytes(range(256))))
    record = encode_dead_letter("inventory.commands", 1, 9, b"k", b"v", "refused", headers)
    assert decode_dead_letter(record.value).original_headers == headers


def test_a_dead_letter_of_a_tombstone_keeps_that_it_had_no_value() -> None:
    record = encode_dead_letter("inventory.commands", 0, 5, None, None, "tombstone")
    letter = decode_dead_letter(record.value)
    assert letter.original_key is None
    assert letter.original_value is None
