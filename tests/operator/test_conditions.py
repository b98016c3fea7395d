"""Status conditions: how long something has been true survives every reconcile that finds
it still true, as `kubectl describe` readers expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.domain.resources import Condition, TopicStatus
from conveyor.operator.conditions import Observation, previous_status, settle

MORNING = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def seen(at: datetime, generation: int = 1) -> Observation:
    return Observation(at, generation)


def test_a_condition_whose_status_holds_keeps_its_transition_time() -> None:
    first = settle([], [seen(MORNING).condition("Ready", "True", "InSync", "3 partitions")])
    later = MORNING + timedelta(hours=2)
    again = settle(first, [seen(later, 2).condition("Ready", "True", "InSync", "5 partitions")])
    [ready] = again
    assert ready.last_transition_time == MORNING
    # What the status says now is written, only the time is kept.
    assert (ready.message, ready.observed_generation) == ("5 partitions", 2)


def test_a_condition_whose_reason_changes_but_not_its_status_keeps_its_time() -> None:
    first = settle([], [seen(MORNING).condition("Degraded", "False", "AsExpected")])
    later = MORNING + timedelta(minutes=5)
    [degraded] = settle(first, [seen(later).condition("Degraded", "False", "Recovered")])
    assert (degraded.reason, degraded.last_transition_time) == ("Recovered", MORNING)


def test_a_condition_whose_status_changes_moves_its_transition_time_to_now() -> None:
    first = settle([], [seen(MORNING).condition("Ready", "True", "InSync")])
    later = MORNING + timedelta(minutes=1)
    [ready] = settle(first, [seen(later).condition("Ready", "False", "ShrinkRefused")])
    assert (ready.status, ready.last_transition_time) == ("False", later)


def test_a_new_condition_starts_now_and_a_dropped_one_is_gone() -> None:
    first = settle(
        [],
        [
            seen(MORNING).condition("Ready", "False", "NotReady"),
            seen(MORNING).condition("TopicsReady", "True", "TopicsFound"),
        ],
    )
    later = MORNING + timedelta(minutes=3)
    settled = settle(
        first,
        [
            seen(later).condition("Ready", "False", "InvalidSpec"),
            seen(later).condition("Suspended", "False", "Running"),
        ],
    )
    assert [(c.type, c.last_transition_time) for c in settled] == [
        ("Ready", MORNING),
        ("Suspended", later),
    ]


def test_times_are_kept_to_the_second_so_a_written_time_reads_back_equal() -> None:
    now = Observation.now(generation=4)
    assert now.at.microsecond == 0
    condition = now.condition("Ready", "True", "InSync")
    written = condition.model_dump(by_alias=True, mode="json")
    assert written["lastTransitionTime"].endswith("Z")
    assert Condition.model_validate(written) == condition


def test_a_status_the_model_refuses_reads_as_empty_and_is_replaced() -> None:
    hand_written = {"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}
    assert previous_status(hand_written, TopicStatus) == TopicStatus()
    held = TopicStatus(
        conditions=[seen(MORNING).condition("Ready", "True", "InSync")], partitions=3
    )
    body = {"status": held.model_dump(by_alias=True, mode="json")}
    assert previous_status(body, TopicStatus) == held
