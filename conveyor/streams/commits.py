"""Offset commits that never pass a record nobody processed.

Faust 0.15 decides what to commit from the offsets its streams acknowledged. When the
first unacknowledged offset of a partition is exactly one below the acknowledged ones, it
takes that hole for a compacted or transactional gap and commits past it (faust-streaming
#606, fix proposed in #707), and a record skipped after a seek is noted as such a gap too.
Conveyor's crash tests hit this after a restart, when records fetched during table recovery
are dropped from the stream's queue (#596): the record is neither processed nor fetched
again, and its offset is committed, so it is lost.

``SafeCommitConsumer`` withholds the commit while the partition's next offset is not
acknowledged (outside transactions, where holes are real, unless the fetcher recorded it
as a gap). A watchdog (``refetch_stalled``) finds
partitions whose next record is missing and on nobody's way, and seeks them back to it: the
record and those after it are delivered again (harmless, every handler is idempotent)
instead of lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

# How long a partition's next record may stay missing (possibly still in the fetcher's
# buffer) before the partition is fetched again from there.
REFETCH_AFTER_SECONDS = 5.0
WATCHDOG_INTERVAL_SECONDS = 1.0


class SafeCommitConsumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stalled_since: dict[tuple[TP, int], float] = {}

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if not self.in_transaction:
            # Without transactions Conveyor's topics have no holes (none is compacted and no
            # producer writes transaction markers), so every "gap" the fetcher noted is a
            # record it skipped after a seek or a dropped queue, never one to commit past.
            self._gap[tp].clear()
        if acked and committed is not None:
            head = min(acked)
            if head > committed and not self._is_known_gap(tp, committed, head):
                # Not past the hole: `refetch_stalled` brings its record back.
                return None
        offset: int | None = super()._new_offset(tp)
        return offset

    def _highwater_or_none(self, tp: TP) -> int | None:
        try:
            end: int | None = self.highwater(tp)
        except Exception as exc:  # no fetch position yet: nothing to judge
            log.debug("%s: no highwater yet (%r)", tp, exc)
            return None
        return end

    def _is_known_gap(self, tp: TP, first: int, end: int) -> bool:
        gaps = self._gap[tp]
        return all(gaps.overlaps_point(offset) for offset in range(first, end))

    async def refetch_stalled(self) -> None:
        """Fetch again each partition whose next record is neither processed nor on its way.

        Called periodically. A partition stalls there when its next record was dropped: it
        has records beyond the committed offset, none of them is with a stream, and the
        committed offset has not moved for ``REFETCH_AFTER_SECONDS``.
        """
        now = time.monotonic()
        changelogs = set(self.app.tables.changelog_topics)
        in_flight = {(message.tp, message.offset) for message in list(self._unacked_messages)}
        stalled: dict[tuple[TP, int], float] = {}
        for tp in self.assignment():
            committed = self._committed_offset[tp]
            if tp.topic in changelogs or committed is None:
                continue
            end = self._highwater_or_none(tp)
            if end is None or committed >= end or committed in self._acked_index[tp]:
                continue
            if any(t == tp and offset >= committed for t, offset in in_flight):
                continue
            key = (tp, committed)
            stalled[key] = self._stalled_since.get(key, now)
            if now - stalled[key] < REFETCH_AFTER_SECONDS:
                continue
            log.warning(
                "%s[%d]: offset %d was never processed and is not on its way; fetching again",
                tp.topic,
                tp.partition,
                committed,
            )
            stalled[key] = now
            # Acknowledgements past the hole are dropped: those records come again.
            self._acked[tp] = []
            self._acked_index[tp] = set()
            await self.seek(tp, committed)
        self._stalled_since = stalled


class SafeCommitTransport(faust_aiokafka.Transport):
    Consumer = SafeCommitConsumer


class ConveyorApp(faust.App):
    """A Faust app whose consumer commits with ``SafeCommitConsumer``."""

    def _new_transport(self) -> SafeCommitTransport:
        return SafeCommitTransport(self.conf.broker_consumer, self)
