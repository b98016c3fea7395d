"""Readiness that means ready to process, and how far a worker's table restore has come.

A worker answers ``GET /ready`` on its metrics port (``serve_metrics``) with 200 only once it
has its assignment, is not mid-rebalance, and Faust has restored the tables of its active
partitions from their changelogs (standby partitions don't count); otherwise 503. The body is
``conveyor.domain.readiness.WorkerReadiness``. The operator's rollouts wait for this answer
before rolling the next pod (docs/scaling.md).

Faust keeps the restore's position in its Recovery service: per changelog partition the
highwater and the offset read so far. ``ConveyorRecovery`` notes, when it starts reading, how
many records it has to read, and the wall time of each restore; ``Readiness.watch`` turns that
into the report the HTTP thread serves, the ``conveyor_restore_*`` gauges, and a log line every
few seconds while a restore runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from mode import Service

from conveyor.domain.readiness import Phase, RestoreProgress, WorkerReadiness
from conveyor.streams import metrics

log = logging.getLogger(__name__)

# How often the report is refreshed: what /ready answers is at most this old.
REFRESH_SECONDS = 0.5
# How often a running restore is logged.
LOG_EVERY_SECONDS = 5.0
# How long a restoring partition whose consumer is past its last offset gets no record before
# what is left is taken for transaction markers (Faust's own wait is two of its 5 s timeouts).
MARKER_QUIET_SECONDS = 5.0


STARTING = WorkerReadiness(ready=False, phase="starting")


class ConveyorRecovery(Recovery):
    """Faust's Recovery, noting how many records each restore reads and how long it takes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Records the active partitions had to read when the current or last restore began
        # reading (0 until its highwaters and start offsets are known).
        self.restore_total = 0
        self._reading = False
        self._started_at: float | None = None
        self.last_restore_seconds: float | None = None

    def _set_recovery_started(self) -> None:
        if not self.in_recovery:
            self._started_at = time.monotonic()
            self.restore_total = 0
            self._reading = False
        super()._set_recovery_started()

    def _set_recovery_ended(self) -> None:
        if self.in_recovery and self._started_at is not None:
            self.last_restore_seconds = time.monotonic() - self._started_at
        self._reading = False
        super()._set_recovery_ended()

    async def _seek_offsets(self, consumer: Any, tps: set[TP], offsets: Any, title: str) -> None:
        await super()._seek_offsets(consumer, tps, offsets, title)
        if title == "active":
            # Highwaters and start offsets are both known here, just before reading begins.
            self.restore_total = self._remaining()
            self._reading = True

    @Service.task
    async def _pass_trailing_transaction_markers(self) -> None:
        """End a restore that waits for a changelog's trailing transaction markers.

        Under exactly_once a changelog's transactions each end in a commit marker: an offset
        that takes a place but is never handed to a consumer. Faust counts a partition
        restored once it has read the record at the last offset, and passes trailing markers
        only while the worker itself runs under exactly_once; a worker restarted under
        at_least_once waited for that record forever and never turned ready. Once the
        consumer's position is past the last offset and nothing came for a while, as Faust
        itself judges it, the partition has nothing more to read.
        """
        while not self.should_stop:
            await self.sleep(MARKER_QUIET_SECONDS)
            if not self.in_recovery or self.app.in_transaction:
                continue
            if not self.tables.changelog_queue.empty():
                continue
            now = time.monotonic()
            for tp, last_offset in list(self.active_highwaters.items()):
                read = self.active_offsets.get(tp)
                if read is None or read >= last_offset:
                    continue
                received = self._active_events_received_at.get(tp, self._started_at or now)
                if now - received < MARKER_QUIET_SECONDS:
                    continue
                position = await self.app.consumer.position(tp)
                if position is not None and position > last_offset:
                    log.info(
                        "%s: restored through offset %d; the offsets after it, up to %d, "
                        "are transaction markers",
                        tp,
                        read,
                        last_offset,
                    )
                    self.active_offsets[tp] = last_offset

    def _remaining(self) -> int:
        return sum(max(0, records) for records in self.active_remaining().values())

    def progress(self) -> tuple[int, int]:
        """(records restored, records to restore) of the current or last restore."""
        if not self._reading:
            return self.restore_total, self.restore_total
        restored = self.restore_total - self._remaining()
        return min(max(0, restored), self.restore_total), self.restore_total


class ConveyorTableManager(TableManager):
    """Faust's table manager, with ``ConveyorRecovery`` as its recovery service."""

    @property
    def recovery(self) -> ConveyorRecovery:
        if self._recovery is None:
            self._recovery = ConveyorRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]


class Readiness:
    """The worker's readiness, computed in its event loop and read by the metrics thread."""

    def __init__(self, processor: str, app: faust.App, inputs: frozenset[str]) -> None:
        self.processor = processor
        self.app = app
        self.inputs = inputs
        self._assigned = False
        # Replaced whole (never mutated), so the HTTP thread always reads one consistent report.
        self.report = STARTING
        app.on_partitions_assigned.connect(self._on_assigned)

    async def _on_assigned(self, *_: Any, **__: Any) -> None:
        self._assigned = True
        self.refresh()

    def _recovery(self) -> ConveyorRecovery | None:
        recovery = getattr(self.app.tables, "recovery", None)
        return recovery if isinstance(recovery, ConveyorRecovery) else None

    def _phase(self, recovery: ConveyorRecovery | None) -> Phase:
        if not self._assigned:
            return "starting"
        if recovery is not None and recovery.in_recovery:
            return "restoring"
        if self.app.rebalancing:
            return "rebalancing"
        return "processing"

    def refresh(self) -> WorkerReadiness:
        recovery = self._recovery()
        phase = self._phase(recovery)
        restored, total = recovery.progress() if recovery is not None else (0, 0)
        partitions = 0
        if self._assigned:
            actives = self.app.assignor.assigned_actives()
            partitions = sum(1 for tp in actives if tp.topic in self.inputs)
        self.report = WorkerReadiness(
            ready=phase == "processing",
            phase=phase,
            restore=RestoreProgress(restored=restored, total=total),
            partitions=partitions,
        )
        metrics.RESTORE_RECORDS.labels(self.processor).set(total)
        metrics.RESTORE_RECORDS_DONE.labels(self.processor).set(restored)
        if recovery is not None and recovery.last_restore_seconds is not None:
            metrics.RESTORE_LAST_SECONDS.labels(self.processor).set(recovery.last_restore_seconds)
        return self.report

    def answer(self) -> WorkerReadiness:
        """For the metrics thread: the answer to ``GET /ready``."""
        return self.report

    async def watch(self) -> None:
        """Refresh the report until cancelled, logging a running restore's progress."""
        logged_at = 0.0
        while True:
            report = self.refresh()
            now = time.monotonic()
            if (
                report.phase == "restoring"
                and report.restore.total
                and now - logged_at >= LOG_EVERY_SECONDS
            ):
                logged_at = now
                log.info(
                    "%s: restoring tables: %d of %d records",
                    self.processor,
                    report.restore.restored,
                    report.restore.total,
                )
            await asyncio.sleep(REFRESH_SECONDS)
