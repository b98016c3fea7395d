"""The saga's processors wait for their batches to fill as long as their records have lately
been old; the others wait a fixed time."""

from __future__ import annotations

import pytest

from conveyor.streams.batch_wait import BatchWait

LONGEST = 0.025  # the default longest wait of the processors an order waits on


def taken_at_age(wait: BatchWait, age: float, batches: int, now: float = 1_000.0) -> None:
    for _ in range(batches):
        wait.observe(produced_at=now - age, now=now)


def test_a_processor_just_started_does_not_wait() -> None:
    # The first orders after a quiet start are not held up at every hop.
    assert BatchWait.following_age(LONGEST).seconds() == 0


def test_records_taken_young_are_waited_for_about_as_long() -> None:
    # A machine with CPU to spare: records reach the processor 2 ms after they were
    # produced, and it waits about that much rather than the whole 25 ms.
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=0.002, batches=50)
    assert wait.seconds() == pytest.approx(0.002, rel=0.01)


def test_records_taken_late_are_waited_for_the_whole_longest_wait() -> None:
    # A machine short of CPU: records are 200 ms old when taken, and the processor waits
    # all it may, so each batch's fixed costs are shared by more records.
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=0.2, batches=50)
    assert wait.seconds() == LONGEST


def test_a_backlog_found_at_the_start_is_waited_for_at_once() -> None:
    # A processor restarted behind its inputs: its first record is seconds old.
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=5.0, batches=1)
    assert wait.seconds() == LONGEST


def test_one_late_record_does_not_set_the_wait() -> None:
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=0.002, batches=50)
    taken_at_age(wait, age=0.05, batches=1)
    assert wait.seconds() < 0.015


def test_the_wait_shortens_again_once_records_come_young() -> None:
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=0.5, batches=50)
    taken_at_age(wait, age=0.001, batches=30)
    assert wait.seconds() < 0.002


def test_a_producer_clock_ahead_of_this_one_means_no_wait_not_a_negative_one() -> None:
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=-0.3, batches=10)
    assert wait.seconds() == 0


def test_no_longest_wait_is_never_waited() -> None:
    wait = BatchWait.following_age(0)
    taken_at_age(wait, age=1.0, batches=10)
    assert wait.seconds() == 0


def test_a_processor_no_order_waits_on_waits_its_whole_wait_however_young_its_records() -> None:
    # Notifications and recommendations: a second later goes unnoticed, and shorter waits
    # cost more CPU at every rate.
    wait = BatchWait.fixed(1.0)
    assert wait.seconds() == 1.0
    taken_at_age(wait, age=0.001, batches=50)
    assert wait.seconds() == 1.0


def test_a_lone_order_after_a_rush_is_not_held_up_by_the_rush() -> None:
    # The saga benchmark's shape: 300 orders at once, their records seconds old by the
    # time they are taken, then orders one at a time a moment apart.
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=3.0, batches=20, now=1_000.0)
    assert wait.seconds() == LONGEST
    for lone in range(3):
        wait.observe(produced_at=1_000.5 + lone * 0.5 - 0.002, now=1_000.5 + lone * 0.5)
    assert wait.seconds() < 0.005


def test_a_rush_s_records_count_no_more_than_the_longest_wait() -> None:
    # Batches close together: a backlog's age fades within a few batches once records come
    # young again, rather than after dozens.
    wait = BatchWait.following_age(LONGEST)
    taken_at_age(wait, age=30.0, batches=5)
    taken_at_age(wait, age=0.002, batches=8)
    assert wait.seconds() < 0.01
