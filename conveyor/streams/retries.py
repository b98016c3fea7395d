"""Parked records: what a record on ``<topic>.retry`` carries besides the original.

A record whose handling fails transiently (an outside service is down) is parked: sent,
with its original key, value and headers, to the retry topic of its source, on the same
partition number, with headers saying which processor parked it, which try comes next,
when it is due, the last error, and where the record first came from. The processor reads
its retry topics beside its inputs and handles a parked record again once it is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PROCESSOR_HEADER = "retry-processor"
ATTEMPT_HEADER = "retry-attempt"
DUE_HEADER = "retry-due"
ERROR_HEADER = "retry-error"
ORIGIN_TOPIC_HEADER = "retry-origin-topic"
ORIGIN_PARTITION_HEADER = "retry-origin-partition"
ORIGIN_OFFSET_HEADER = "retry-origin-offset"
_OWN_HEADERS = frozenset(
    {
        PROCESSOR_HEADER,
        ATTEMPT_HEADER,
        DUE_HEADER,
        ERROR_HEADER,
        ORIGIN_TOPIC_HEADER,
        ORIGIN_PARTITION_HEADER,
        ORIGIN_OFFSET_HEADER,
    }
)
# Kafka headers are bytes; an error's text is cut here (the dead letter keeps it whole).
ERROR_HEADER_LIMIT = 1000

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Origin:
    """Where a record was first read: its dead letter names this, not the retry topic."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Parking:
    """What a parked record's headers say."""

    processor: str
    # The try this record is parked for: 1 for the first try after the original failed.
    attempt: int
    due: datetime
    error: str
    origin: Origin

    def headers(self, original: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The original headers (less any earlier parking's) with this parking's."""
        return [
            *without_parking(list(original)),
            (PROCESSOR_HEADER, self.processor.encode()),
            (ATTEMPT_HEADER, str(self.attempt).encode()),
            (DUE_HEADER, self.due.isoformat().encode()),
            (ERROR_HEADER, self.error[:ERROR_HEADER_LIMIT].encode()),
            (ORIGIN_TOPIC_HEADER, self.origin.topic.encode()),
            (ORIGIN_PARTITION_HEADER, str(self.origin.partition).encode()),
            (ORIGIN_OFFSET_HEADER, str(self.origin.offset).encode()),
        ]

    @classmethod
    def read(cls, headers: Mapping[str, bytes]) -> Parking | None:
        """The parking the headers describe; None when they do not (not a parked record)."""
        try:
            return cls(
                processor=headers[PROCESSOR_HEADER].decode(),
                attempt=int(headers[ATTEMPT_HEADER]),
                due=datetime.fromisoformat(headers[DUE_HEADER].decode()),
                error=headers.get(ERROR_HEADER, b"").decode(errors="replace"),
                origin=Origin(
                    headers[ORIGIN_TOPIC_HEADER].decode(),
                    int(headers[ORIGIN_PARTITION_HEADER]),
                    int(headers[ORIGIN_OFFSET_HEADER]),
                ),
            )
        except (KeyError, ValueError):
            return None


def next_parking(
    delays: Sequence[float],
    processor: str,
    origin: Origin,
    previous: Parking | None,
    error: str,
    now: datetime | None = None,
) -> Parking | None:
    """The parking for a record whose try failed; None when no try is left (its DLQ's turn).

    ``delays[n]`` is the wait before try ``n + 1``: the original try is followed by
    ``len(delays)`` more.
    """
    attempt = 1 if previous is None else previous.attempt + 1
    if attempt > len(delays):
        return None
    now = now or datetime.now(UTC)
    return Parking(
        processor=processor,
        attempt=attempt,
        due=now + timedelta(seconds=delays[attempt - 1]),
        error=error,
        origin=origin,
    )


def without_parking(headers: Headers) -> list[tuple[str, bytes]]:
    """The record's own headers, less what parking added: what its dead letter keeps, so a
    replay starts it afresh rather than as a try that already ran out."""
    return [(name, value) for name, value in headers if name not in _OWN_HEADERS]
