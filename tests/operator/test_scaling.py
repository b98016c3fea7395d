"""The autoscaler's arithmetic: replicas from lag, bounded, and slow to shrink."""

from __future__ import annotations

from conveyor.domain.resources import Autoscaling
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
