"""The open orders of a worker's partitions, indexed by deadline: what the deadline sweep reads.

The orders processor's timer asks every second which orders' deadlines have come and how
old the pending ones are. Walking the saga table for that would cost a read and a decode of
every saga the retention keeps (mostly finished ones), so the processor keeps this index in
memory instead: a heap of deadlines and the placement time of each open order, rebuilt by
one walk of the table after each partition assignment and kept up to date as sagas are
written. A sweep then costs what is due, plus one pass over the open orders for the gauge.

The heap may hold deadlines that were moved since (a saga's deadline changes when it starts
compensating): the saga itself is the truth, and ``decide`` ignores a deadline not reached.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from conveyor.domain.messages import OrderStatus
from conveyor.streams.saga import OrderSaga

# The pending orders gauge's buckets: each label counts the orders younger than its bound
# (seconds since placement) and at least as old as the bound before.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("lt_30s", 30.0),
    ("30s_2m", 120.0),
    ("2m_10m", 600.0),
    ("gt_10m", float("inf")),
)


@dataclass
class _Open:
    partition: int
    # When the order was placed while it is pending; None once confirmed (a cancel of a
    # confirmed order is open, compensating, but no longer pending).
    pending_since: float | None


class OpenOrders:
    """Deadlines and ages of the open (not done) sagas of the partitions this worker holds."""

    def __init__(self) -> None:
        self._deadlines: list[tuple[float, str]] = []
        self._open: dict[str, _Open] = {}

    def __len__(self) -> int:
        return len(self._open)

    def rebuild(
        self, sagas: Iterable[tuple[str, int, OrderSaga]], now: float, deadline_seconds: float
    ) -> None:
        """Index ``sagas`` (key, partition, saga) anew, forgetting everything before.

        A saga stored by a version without deadlines gets one ``deadline_seconds`` from now.
        """
        self._deadlines = []
        self._open = {}
        for key, partition, saga in sagas:
            if saga.phase == "done":
                continue
            deadline = saga.deadline if saga.deadline is not None else now + deadline_seconds
            self._deadlines.append((deadline, key))
            self._open[key] = _Open(partition, _pending_since(saga, now))
        heapq.heapify(self._deadlines)

    def track(
        self, key: str, partition: int, saga: OrderSaga, before: OrderSaga | None, now: float
    ) -> None:
        """Follow a saga just written (``before``: what the table held until then)."""
        if saga.phase == "done":
            self._open.pop(key, None)
            return
        known = self._open.get(key)
        first_seen = known.pending_since if known and known.pending_since is not None else now
        self._open[key] = _Open(partition, _pending_since(saga, first_seen))
        if saga.deadline is not None and (before is None or before.deadline != saga.deadline):
            heapq.heappush(self._deadlines, (saga.deadline, key))

    def due(self, now: float) -> list[tuple[str, int]]:
        """The open orders whose indexed deadline has come, each once, with its partition."""
        found: dict[str, int] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            _, key = heapq.heappop(self._deadlines)
            known = self._open.get(key)
            if known is not None:
                found[key] = known.partition
        return list(found.items())

    def pending_by_age(self, now: float) -> dict[str, int]:
        """How many pending orders fall in each of ``AGE_BUCKETS``."""
        counts = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
        for known in self._open.values():
            if known.pending_since is None:
                continue
            age = now - known.pending_since
            for label, bound in AGE_BUCKETS:
                if age < bound:
                    counts[label] += 1
                    break
        return counts


def _pending_since(saga: OrderSaga, unknown: float) -> float | None:
    """When ``saga`` was placed if it is pending (``unknown`` when it does not say)."""
    if saga.status != OrderStatus.PENDING:
        return None
    return saga.placed_at if saga.placed_at is not None else unknown
