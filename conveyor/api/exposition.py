"""What ``/metrics`` serves: the metrics of every worker of this edge, added up.

``conveyor api`` always runs in prometheus_client's multiprocess mode (``conveyor.api.workers``),
with one worker as with many, so the series a scrape returns never depend on the worker count.
What that mode leaves out is deliberate: the process and platform collectors (CPU seconds,
memory, open files, garbage collection) describe one process, and summed over workers they would
describe none; the container's CPU and memory come from the kubelet instead, which is also what
the HorizontalPodAutoscaler reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from conveyor.api.workers import MULTIPROC_VARIABLE


def latest() -> bytes:
    """The Prometheus text of every worker's metrics, or of this process's alone when the app
    is served without ``conveyor api`` (the benchmarks run it in one plain process)."""
    if not os.environ.get(MULTIPROC_VARIABLE):
        return generate_latest(REGISTRY)
    # A fresh registry per scrape, as prometheus_client requires: the collector reads the
    # files as they are now, and the default registry would add this worker's own values again.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_departed_workers() -> None:
    """Drop the live gauges (requests in flight) of workers that no longer run.

    uvicorn replaces a worker that dies; without this, what it had in flight when it died
    would be added to the sum for as long as the edge runs. A worker that stops cleanly has
    nothing in flight, so a new worker's start-up is a good enough time to look.
    """
    directory = os.environ.get(MULTIPROC_VARIABLE)
    if not directory:
        return
    for gauges in Path(directory).glob("gauge_live*_*.db"):
        pid = int(gauges.stem.rpartition("_")[2])
        if not _runs(pid):
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, but one that runs
        return True
    return True
