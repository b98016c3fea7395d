"""The autoscaler's arithmetic: replicas from lag or from time to drain, bounded, and slow to
shrink."""

from __future__ import annotations

from typing import Any

from conveyor.domain.resources import Autoscaling
from conveyor.infra.group_progress import PartitionProgress
from conveyor.operator.draining import (
    MIN_RATE_SPAN_SECONDS,
    DrainDecision,
    DrainInputs,
    RateMeter,
    decide,
)
from conveyor.operator.scaling import Stabilizer, recommend

POLICY = Autoscaling(
    enabled=True,
    min_replicas=1,
    max_replicas=6,
    target_lag_per_replica=100,
    scale_down_stabilization_seconds=60,
)


def test_replicas_follow_the_lag_within_min_and_max() -> None:
    assert recommend(POLICY, lag=0, partitions=12) == 1
    assert recommend(POLICY, lag=250, partitions=12) == 3
    assert recommend(POLICY, lag=100_000, partitions=12) == 6


def test_replicas_never_exceed_the_partition_count() -> None:
    assert recommend(POLICY, lag=100_000, partitions=2) == 2
    assert recommend(POLICY.model_copy(update={"min_replicas": 4}), lag=0, partitions=3) == 3


def test_scaling_up_is_immediate() -> None:
    stabilizer = Stabilizer()
    assert stabilizer.decide(POLICY, current=1, recommendation=4, now=0.0) == 4


def test_scaling_down_waits_for_a_whole_window_of_low_lag() -> None:
    stabilizer = Stabilizer()
    assert stabilizer.decide(POLICY, current=4, recommendation=4, now=0.0) == 4
    assert stabilizer.decide(POLICY, current=4, recommendation=1, now=30.0) == 4
    # A spike inside the window keeps the replicas it asked for.
    assert stabilizer.decide(POLICY, current=4, recommendation=3, now=50.0) == 4
    assert stabilizer.decide(POLICY, current=4, recommendation=1, now=70.0) == 3
    assert stabilizer.decide(POLICY, current=3, recommendation=1, now=111.0) == 1


def test_a_fresh_stabilizer_does_not_scale_down_before_it_watched_a_window() -> None:
    # The operator just (re)started: it has no history, so it keeps what runs.
    stabilizer = Stabilizer()
    assert stabilizer.decide(POLICY, current=5, recommendation=1, now=1000.0) == 5
    assert stabilizer.decide(POLICY, current=5, recommendation=1, now=1061.0) == 1


DRAIN = Autoscaling(
    enabled=True, min_replicas=1, max_replicas=6, target_drain_seconds=20, target_lag_per_replica=1
)


def drain(**inputs: Any) -> DrainDecision:
    given: dict[str, Any] = {"lag": 10_000, "rate_per_replica": 200.0, "current": 1}
    given.update(inputs)
    return decide(DRAIN, DrainInputs(partitions=12, **given))


def test_replicas_drain_the_lag_in_the_target_time_at_the_measured_rate() -> None:
    # 10 000 records at 200 records/s per replica within 20 s: ceil(10 000 / 4 000) = 3.
    decision = drain()
    assert decision.replicas == 3
    assert "lag 10000, rate 200.0 records/s per replica, target drain 20 s" in decision.reason
    assert drain(lag=4_000).replicas == 1
    assert drain(lag=4_001).replicas == 2


def test_drain_replicas_stay_within_min_max_and_the_partitions() -> None:
    assert drain(lag=0, current=3).replicas == 1
    assert drain(lag=1_000_000).replicas == 6
    few = decide(DRAIN, DrainInputs(lag=1_000_000, rate_per_replica=200.0, current=1, partitions=2))
    assert few.replicas == 2
    assert (
        decide(DRAIN.model_copy(update={"min_replicas": 2}), DrainInputs(0, 200.0, 2, 12)).replicas
        == 2
    )


def test_no_drain_decision_without_a_measured_rate() -> None:
    decision = drain(rate_per_replica=None)
    assert decision.replicas is None
    assert "no processing rate measured yet" in decision.reason
    assert drain(rate_per_replica=0.0).replicas is None


def test_a_scale_up_is_skipped_when_the_restore_costs_more_than_it_saves() -> None:
    # Now: 10 000 / 200 = 50 s with one replica. Three replicas: 60 s restore + 17 s drain.
    slow = drain(expected_restore_seconds=60.0)
    assert slow.replicas == 1
    assert "not scaling up" in slow.reason
    # A 20 s restore + 17 s drain beats 50 s: up.
    quick = drain(expected_restore_seconds=20.0)
    assert quick.replicas == 3
    assert "expected restore 20 s" in quick.reason


def test_no_scale_down_while_a_replica_restores() -> None:
    held = drain(lag=100, current=4, restoring=1)
    assert held.replicas == 4
    assert "not scaling down while 1 replica(s) restore" in held.reason
    assert drain(lag=100, current=4, restoring=0).replicas == 1


def test_the_rate_is_the_groups_committed_progress_over_the_window() -> None:
    meter = RateMeter()
    for second in range(0, 12, 2):
        # 10 records/s over two partitions.
        meter.observe(
            [progress(0, committed=5 * second), progress(1, committed=5 * second)], float(second)
        )
        if second < MIN_RATE_SPAN_SECONDS:
            assert meter.rate() is None
    assert meter.rate() == 10.0
    # A partition added: the sums are no longer comparable, the measure starts over.
    meter.observe([progress(p, committed=100) for p in range(3)], 12.0)
    assert meter.rate() is None


def progress(partition: int, committed: int) -> PartitionProgress:
    return PartitionProgress("t", partition, committed, committed + 10, "p-0")


def test_the_worked_example_of_the_readme() -> None:
    # 12 000 records of lag, 50 records/s per replica, 2 replicas, 6 partitions, target 60 s.
    policy = DRAIN.model_copy(update={"target_drain_seconds": 60})
    inputs = DrainInputs(12_000, 50.0, 2, 6, expected_restore_seconds=30.0)
    decision = decide(policy, inputs)
    assert decision.replicas == 4
    assert decision.reason == (
        "lag 12000, rate 50.0 records/s per replica, target drain 60 s: 4 replica(s) needed; "
        "expected restore 30 s, then 60 s to drain with 4 instead of 120 s with 2 "
        "(at most 6: maxReplicas 6, 6 partitions)"
    )
    slower = DrainInputs(12_000, 50.0, 2, 6, expected_restore_seconds=75.0)
    assert decide(policy, slower).replicas == 2
