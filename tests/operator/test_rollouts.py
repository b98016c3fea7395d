"""Recovery-gated rollouts against the real control plane: a StatefulSet's pods roll one at a
time, and the next only once the last one's worker has restored its tables (docs/scaling.md).

kwok marks every pod Ready at once and runs no probes, but its pod addresses are loopback
addresses here (scripts/control-plane/start.sh), so a real ``conveyor worker inventory``
listening on a pod's address is that pod's worker for the operator, which asks it GET /ready.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conveyor.devstack.control_plane import ControlPlane
from conveyor.devstack.launched import Launched
from conveyor.operator.children import METRICS_PORT
from tests.operator.test_operator import condition, ready, running_processor
from tests.streams.test_readiness import fill_changelog
from tests.support.operator import Namespace, OperatorProcess, stream_processor
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.stack,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.long,
]

# The rolled pod's worker needs far longer than this to start and restore: Degraded shows it.
DEADLINE_SECONDS = 3
# Changelog entries written (then deleted) before the rollout: the rolled worker restores
# twice as many records.
ROLLED_ENTRIES = 25_000


def rollout_state(namespace: Namespace) -> tuple[int, str | None]:
    """The StatefulSet's partition and its update revision."""
    found = namespace.get("statefulset", "inventory")
    assert found is not None
    strategy = found["spec"].get("updateStrategy", {}).get("rollingUpdate", {})
    return int(strategy.get("partition", 0)), found.get("status", {}).get("updateRevision")


def updated_pod(namespace: Namespace, name: str) -> dict[str, Any] | None:
    """The pod once it runs the update revision and has an address."""
    _, revision = rollout_state(namespace)
    found = namespace.get("pod", name)
    if found is None or found["metadata"].get("deletionTimestamp"):
        return None
    labels = found["metadata"].get("labels", {})
    if labels.get("controller-revision-hash") != revision or not found["status"].get("podIP"):
        return None
    return found


def new_revision_applied(namespace: Namespace, image: str) -> bool:
    found = namespace.get("statefulset", "inventory")
    assert found is not None
    status = found.get("status", {})
    return bool(
        found["spec"]["template"]["spec"]["containers"][0]["image"] == image
        and status.get("observedGeneration") == found["metadata"]["generation"]
        and status.get("updateRevision") != status.get("currentRevision")
    )


def worker_readiness(address: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{address}:{METRICS_PORT}/ready", timeout=2) as got:
            body: dict[str, Any] = json.loads(got.read())
    except urllib.error.HTTPError as refused:
        body = json.loads(refused.read())
    except OSError:
        return None
    return body


def kwok_pid(cluster: ControlPlane) -> int:
    """The control plane's kwok, among the processes its start script recorded."""
    for line in (cluster.directory / "pids").read_text().split():
        if Path(f"/proc/{line}/comm").read_text().strip() == "kwok":
            return int(line)
    raise AssertionError(f"no kwok among {cluster.directory / 'pids'}")


@contextmanager
def paused(*pids: int) -> Iterator[list[int]]:
    """Processes stopped (SIGSTOP) until the block ends or the test resumes them early."""
    stopped = list(pids)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield stopped
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def resume(stopped: list[int], pid: int) -> None:
    stopped.remove(pid)
    os.kill(pid, signal.SIGCONT)


async def test_a_rollout_waits_for_each_rolled_pod_to_restore_before_rolling_the_next(
    namespace: Namespace,
    operator: OperatorProcess,
    stack: RunningStack,
    workers: Workers,
    tmp_path: Path,
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    state = {"restoreDeadlineSeconds": DEADLINE_SECONDS}
    running_processor(namespace, bootstrap, replicas=2, state=state)
    assert rollout_state(namespace)[0] == 0
    # Enough changelog that the rolled pod's worker restores for several of the operator's
    # 2 s passes: 12,000 records took 1.8 s in one CI run, and no pass saw the restore.
    await fill_changelog(stack, entries=ROLLED_ENTRIES)
    # The session's inventory worker would share the group with the pod's: stopped, the
    # pod's worker gets every partition and restores them all.
    workers.stop("inventory")
    worker: Launched | None = None
    try:
        # kwok marks a new pod Ready at once, and the operator, finding no worker at its
        # address yet, would take that for ready. So kwok waits while the operator starts the
        # rollout, and the operator while kwok brings the rolled pod up and the test starts
        # its worker.
        assert operator.launched is not None
        assert operator.launched.process is not None
        operator_pid = operator.launched.process.pid
        kwok = kwok_pid(namespace.cluster)
        with paused(kwok) as stopped:
            namespace.apply(
                stream_processor("inventory", bootstrap, image="conveyor:2.0", state=state)
            )
            eventually(
                lambda: (
                    new_revision_applied(namespace, "conveyor:2.0")
                    and rollout_state(namespace)[0] == 1
                ),
                "the operator starts the rollout at the last ordinal",
            )
            os.kill(operator_pid, signal.SIGSTOP)
            stopped.append(operator_pid)
            resume(stopped, kwok)
            pod = eventually(
                lambda: updated_pod(namespace, "inventory-1"),
                "the last ordinal, inventory-1, is rolled first",
            )
            assert rollout_state(namespace)[0] == 1
            address = pod["status"]["podIP"]
            assert address.startswith("127.244."), pod["status"]
            worker = Launched(
                "inventory-1's worker",
                [sys.executable, "-m", "conveyor", "worker", "inventory"],
                tmp_path / "inventory-1.log",
                {
                    **workers.environment(METRICS_PORT),
                    "CONVEYOR_METRICS_HOST": address,
                    "CONVEYOR_GROUP_INSTANCE_ID": "inventory-1",
                    "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
                },
            )
            worker.launch()
            eventually(
                lambda: worker_readiness(address),
                f"inventory-1's worker answers on {address}",
                context=worker.log,
            )

        seen: list[tuple[str, int, str, tuple[str, str] | None]] = []

        rolled_worker = worker

        def restored() -> bool:
            assert rolled_worker.running, rolled_worker.log()
            body = worker_readiness(address)
            found = namespace.get("streamprocessor", "inventory")
            progressing = [
                c["message"]
                for c in ((found or {}).get("status") or {}).get("conditions", [])
                if c["type"] == "Progressing"
            ]
            phase = body["phase"] if body else "unanswered"
            partition, _ = rollout_state(namespace)
            seen.append((phase, partition, "".join(progressing), condition(found, "Degraded")))
            return phase == "processing"

        eventually(restored, "inventory-1's worker restores and processes", context=worker.log)
        # Never lowered while the rolled pod's worker was not yet processing.
        assert {partition for phase, partition, _, _ in seen[:-1]} == {1}, seen
        messages = [message for _, _, message, _ in seen]
        assert any(
            "rolling inventory-1 (1 of 2 pods updated): restoring" in message
            and " of " in message.split("restoring", 1)[1]
            for message in messages
        ), messages
        assert ("True", "RestoreTooSlow") in [degraded for *_, degraded in seen], seen

        eventually(lambda: updated_pod(namespace, "inventory-0"), "then inventory-0 is rolled")
        done = eventually(lambda: ready(namespace, "inventory"), "the rollout completes")
        assert rollout_state(namespace)[0] == 0
        assert condition(done, "Progressing") == ("False", "RolloutComplete")
        assert condition(done, "Degraded") == ("False", "AsExpected")
    finally:
        if worker is not None:
            worker.stop(grace_seconds=30)
        workers.start("inventory")


def test_a_processor_scaled_during_a_rollout_ends_with_every_pod_on_the_new_template(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    running_processor(namespace, bootstrap, replicas=2)
    # kwok held, the rolled pod cannot come back: the scale lands mid-rollout.
    with paused(kwok_pid(namespace.cluster)):
        namespace.apply(stream_processor("inventory", bootstrap, image="conveyor:2.0"))
        eventually(
            lambda: (
                new_revision_applied(namespace, "conveyor:2.0") and rollout_state(namespace)[0] == 1
            ),
            "the rollout starts at the last ordinal",
        )
        namespace.kubectl("scale", "streamprocessor/inventory", "--replicas=3")

    def every_pod_updated() -> bool:
        return all(updated_pod(namespace, f"inventory-{n}") is not None for n in range(3))

    eventually(every_pod_updated, "all three pods run the new template")
    done = eventually(lambda: ready(namespace, "inventory"), "the rollout completes at 3")
    assert done["status"]["readyReplicas"] == 3
    assert rollout_state(namespace)[0] == 0
    assert condition(done, "Progressing") == ("False", "RolloutComplete")
