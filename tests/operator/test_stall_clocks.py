"""When a partition counts as stalled, and how long a restarted one stays reported: the
clocks of ``conveyor.operator.stalls``, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.infra.group_progress import PartitionProgress
from conveyor.operator.pods import ready_names
from conveyor.operator.stalls import StallClocks, recent_restarts

READY = {"inventory-0"}


def at(committed: int, end: int = 100, owner: str | None = "inventory-0") -> PartitionProgress:
    return PartitionProgress("inventory.commands", 0, committed, end, owner)


def test_a_partition_with_lag_and_a_still_offset_under_a_ready_pod_stalls_after_the_time() -> None:
    clocks = StallClocks()
    assert clocks.stalled([at(10)], READY, 30, now=0.0) == []
    assert clocks.stalled([at(10)], READY, 30, now=29.0) == []
    assert clocks.stalled([at(10)], READY, 30, now=30.0) == [at(10)]


def test_progress_no_lag_an_unready_owner_or_a_new_owner_start_the_clock_again() -> None:
    both = READY | {"inventory-1"}
    # (what the beat at 20 s sees, what the beat at 45 s sees): 25 s since the interruption.
    for interruption, later in (
        (at(11), at(11)),
        (at(10, end=10), at(10)),
        (at(10, owner="inventory-1"), at(10, owner="inventory-1")),
    ):
        clocks = StallClocks()
        clocks.stalled([at(10)], both, 30, now=0.0)
        clocks.stalled([interruption], both, 30, now=20.0)
        assert clocks.stalled([later], both, 30, now=45.0) == [], interruption
        assert clocks.stalled([later], both, 30, now=50.0) == [later], interruption
    restoring = StallClocks()
    restoring.stalled([at(10)], READY, 30, now=0.0)
    restoring.stalled([at(10)], set(), 30, now=20.0)
    assert restoring.stalled([at(10)], READY, 30, now=45.0) == []


def test_a_restarted_partition_stays_reported_until_it_moves() -> None:
    clocks = StallClocks()
    clocks.stalled([at(10)], READY, 30, now=0.0)
    stalled = clocks.stalled([at(10)], READY, 30, now=30.0)
    clocks.restarted(["inventory-0"], stalled, now=30.0)
    # The pod is away: not stalled anew, but still healing.
    again = clocks.stalled([at(10)], set(), 30, now=32.0)
    progress = {("inventory.commands", 0): at(10)}
    assert clocks.still_healing(progress, again) == [at(10)]
    moved = {("inventory.commands", 0): at(12)}
    assert clocks.still_healing(moved, []) == []


def test_only_restarts_within_the_rolling_hour_count() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    times = [now - timedelta(minutes=61), now - timedelta(minutes=59), now - timedelta(minutes=1)]
    assert recent_restarts(times, now) == times[1:]


def test_only_ready_pods_not_being_deleted_own_partitions_that_can_stall() -> None:
    def pod(name: str, ready: str, deleting: bool = False) -> dict[str, object]:
        metadata: dict[str, object] = {"name": name}
        if deleting:
            metadata["deletionTimestamp"] = "2026-12-02T12:00:00Z"
        return {
            "metadata": metadata,
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }

    pods = [pod("a", "True"), pod("b", "False"), pod("c", "True", deleting=True)]
    assert ready_names(pods) == {"a"}
