"""The edge's worker processes: ``conveyor api`` serves with several uvicorn workers, and their
metrics add up through prometheus_client's multiprocess mode.

Each worker writes its samples to files of its own in one directory, named by
``PROMETHEUS_MULTIPROC_DIR``; ``/metrics`` reads them all (``conveyor.api.exposition``), so a
scrape answered by any worker counts every worker's requests. prometheus_client chooses the mode
once, from that variable, when it is first imported: the parent sets it before uvicorn imports
the app, and this module never imports prometheus_client itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class MetricsDirectoryUnusable(Exception):
    """The directory named by PROMETHEUS_MULTIPROC_DIR cannot hold the workers' metrics."""


@contextmanager
def shared_metrics_directory() -> Iterator[Path]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory while the edge serves.

    A directory the user set is honoured (Kubernetes mounts an emptyDir there) and emptied of
    the files of an earlier run first: an emptyDir outlives a container's restart, and its old
    counts would be added again. Otherwise a temporary directory is made and removed at exit.
    """
    given = os.environ.get(MULTIPROC_VARIABLE)
    if not given:
        with tempfile.TemporaryDirectory(prefix="conveyor-edge-metrics-") as made:
            os.environ[MULTIPROC_VARIABLE] = made
            try:
                yield Path(made)
            finally:
                os.environ.pop(MULTIPROC_VARIABLE, None)
        return
    directory = Path(given)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for earlier in directory.glob("*.db"):
            earlier.unlink()
    except OSError as error:
        raise MetricsDirectoryUnusable(
            f"{MULTIPROC_VARIABLE}={given} cannot hold the edge workers' metrics ({error}): "
            "point it at a writable directory of the edge's own, or unset it to use a "
            "temporary one"
        ) from error
    yield directory
