"""Stall detection and healing against a real control plane and a real, frozen worker.

The pod ``inventory-0`` is a kwok pod; the member of the consumer group that owns the
partitions is a real ``conveyor worker inventory`` whose ``group.instance.id`` is
``inventory-0``, as a StatefulSet pod's is. Frozen with SIGSTOP it stays in the group (a
long session timeout) and commits nothing: exactly a hung processor the lag alone cannot
tell from a busy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.domain.topics import consumer_group
from conveyor.infra.group_progress import group_progress
from conveyor.infra.groups import remove_static_members
from tests.operator.test_draining import produce
from tests.operator.test_operator import condition, processor_when, running_processor
from tests.support.operator import Namespace, OperatorProcess, stream_processor
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = pytest.mark.long

INSTANCE = "inventory-0"
INPUT = "inventory.commands"


@contextlib.contextmanager
def inventory_as_pod(
    workers: Workers, bootstrap: str, instance: str = INSTANCE, session_seconds: int = 60
) -> Iterator[Any]:
    """The session's inventory worker replaced by one with ``group.instance.id``
    ``instance`` that owns every partition; the session's worker is back afterwards."""
    workers.stop("inventory")
    try:
        workers.start_with(
            "inventory",
            {
                "CONVEYOR_GROUP_INSTANCE_ID": instance,
                "CONVEYOR_SESSION_TIMEOUT_SECONDS": str(session_seconds),
            },
        )
        owned = eventually(
            lambda: asyncio.run(group_progress(bootstrap, consumer_group("inventory"), [INPUT])),
            f"every {INPUT} partition owned by {instance}",
            until=lambda found: all(p.owner == instance for p in found.values()),
        )
        assert owned
        yield workers.workers["inventory"].launched.process
    finally:
        workers.kill("inventory")
        # A static member never leaves by itself: without this the group would wait out its
        # long session before the session's own worker got the partitions back.
        asyncio.run(remove_static_members(bootstrap, consumer_group("inventory"), [instance]))
        workers.start("inventory")


def pod_uid(namespace: Namespace) -> str | None:
    found = namespace.get("pod", INSTANCE)
    return None if found is None else str(found["metadata"]["uid"])


def replaced(namespace: Namespace, before: str | None) -> str | None:
    """The pod's uid once it differs from ``before``."""
    uid = pod_uid(namespace)
    return uid if uid is not None and uid != before else None


def stalled_saying(namespace: Namespace, operator: OperatorProcess, words: str) -> dict[str, Any]:
    return eventually(
        lambda: processor_when(
            namespace,
            "inventory",
            lambda found: (
                condition(found, "Stalled") == ("True", "PartitionsStalled")
                and words in stall_message(found)
            ),
        ),
        f"Stalled=True saying {words!r}",
        context=lambda: (
            json.dumps((namespace.get("streamprocessor", "inventory") or {}).get("status"))
            + namespace.kubectl("get", "pods", "-o", "wide").stdout
            + operator.log()
        ),
    )


def stall_message(found: dict[str, Any]) -> str:
    for item in found.get("status", {}).get("conditions", []):
        if item["type"] == "Stalled":
            return str(item.get("message", ""))
    return ""


def test_a_stalled_partition_restarts_its_pod_until_the_budget_is_spent(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack, workers: Workers
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    stall_detection = {"stallSeconds": 3, "remediation": "restart", "maxRestartsPerHour": 1}
    running = running_processor(namespace, bootstrap, replicas=1, stallDetection=stall_detection)
    assert condition(running, "Stalled") == ("False", "PartitionsProgressing")
    first_uid = pod_uid(namespace)
    with inventory_as_pod(workers, bootstrap) as worker:
        worker.send_signal(signal.SIGSTOP)
        try:
            produce(bootstrap, 12)
            # The first stall: reported, and healed by deleting the pod that owns it.
            restarted = stalled_saying(
                namespace, operator, f"restarted {INSTANCE} (1 of 1 restarts"
            )
            message = stall_message(restarted)
            assert f"{INPUT}[" in message
            assert f"owned by {INSTANCE}" in message
            assert len(restarted["status"]["stallRestarts"]) == 1
            second_uid = eventually(
                lambda: replaced(namespace, first_uid),
                "inventory-0 deleted and made again by its StatefulSet",
            )
            assert (
                operator.metric("conveyor_operator_stall_restarts_total", namespace=namespace.name)
                == 1
            )
            # Still frozen: the second stall finds the budget spent and is only reported.
            spent = stalled_saying(namespace, operator, "restart budget spent (1 of 1 restarts")
            assert f"owned by {INSTANCE}" in stall_message(spent)
            assert (
                operator.metric("conveyor_operator_stalled_partitions", namespace=namespace.name)
                >= 1
            )
        finally:
            worker.send_signal(signal.SIGCONT)
    assert pod_uid(namespace) == second_uid
    events = namespace.events("inventory", "Stalled", "StallRestartBudgetSpent")
    reasons = {(event["type"], event["reason"]) for event in events}
    assert ("Warning", "Stalled") in reasons
    assert ("Warning", "StallRestartBudgetSpent") in reasons
    assert any(INSTANCE in event["message"] for event in events if event["reason"] == "Stalled")
    assert operator.metric("conveyor_operator_stall_restarts_total", namespace=namespace.name) == 1


def test_a_pod_scaled_away_leaves_the_group_at_once_not_after_its_session(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack, workers: Workers
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    # An earlier test's inventory StreamProcessor, still being deleted, would see this
    # test's inventory-1 as one of its own pods scaled away, release it, and post the event
    # in its own namespace.
    namespace.alone()
    running_processor(namespace, bootstrap, replicas=2)
    # The member of pod inventory-1, with a session far longer than the test: only the
    # operator removing it can end its hold on the partitions.
    with inventory_as_pod(workers, bootstrap, "inventory-1", session_seconds=85):
        namespace.apply(stream_processor("inventory", bootstrap, replicas=1))
        eventually(lambda: namespace.get("pod", "inventory-1") is None, "inventory-1 scaled away")
        # Its process ends with its pod (no leave: a static member sends none).
        workers.kill("inventory")
        released = eventually(
            lambda: asyncio.run(group_progress(bootstrap, consumer_group("inventory"), [INPUT])),
            "the operator removed inventory-1 from the group",
            until=lambda found: bool(found) and all(p.owner is None for p in found.values()),
            context=operator.log,
        )
        assert released
        assert namespace.get("pod", "inventory-0") is not None
    events = namespace.events("inventory", "MembersReleased")
    [event] = [e for e in events if e["reason"] == "MembersReleased"]
    assert "inventory-1" in event["message"]
