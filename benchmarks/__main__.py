"""Run every benchmark: `make bench` (or `uv run python -m benchmarks`).

With CONVEYOR_BENCH_STACK=reuse the benchmarks use the stack `make run` started; otherwise
they start a stack of their own on free ports and stop it afterwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.console import Console

from benchmarks import (
    codec,
    deadlines,
    edge,
    logins,
    operator,
    producer,
    saga,
    scaleout,
    soak,
    throughput,
)
from conveyor.devstack.settings import DevStackSettings
from conveyor.devstack.stack import LocalStack


def main() -> None:
    # Wide enough for the tables whatever the terminal (or none, in CI).
    console = Console(width=120)
    codec.run(console)
    deadlines.run(console)
    if os.environ.get("CONVEYOR_BENCH_STACK") == "reuse":
        urls = LocalStack(DevStackSettings(), console).service_urls()
        producer.run(console, urls)
        edge.run(console, urls)
        logins.run(console, urls)
        operator.run(console, urls)
        # The saga, soak, throughput and scale-out benchmarks start and stop processors, so
        # they run only on their own stack.
        return
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as home:
        stack = LocalStack(DevStackSettings.isolated(Path(home)), Console(stderr=True), {})
        try:
            urls = stack.up()
            producer.run(console, urls)
            saga.run(console, stack)
            # Short: the full soak (`make soak`) takes an hour.
            soak.run(console, stack, orders=soak.BENCH_ORDERS, window=soak.BENCH_WINDOW)
            throughput.run(console, stack)
            scaleout.run(console, stack)
            edge.run(console, urls)
            logins.run(console, urls)
            operator.run(console, urls)
        finally:
            stack.down(purge=True)


if __name__ == "__main__":
    main()
