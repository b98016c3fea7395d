"""A login storm: 200 logins at once on one edge process, its latency and its peak memory.

argon2id holds its whole memory cost (64 MiB by default) for each password check, so what
bounds an edge worker's memory under many logins at once is how many checks it runs side by
side: as many as fit in CONVEYOR_PASSWORD_HASHING_BUDGET_MIB (128 MiB: two). Measured in the
same run, on the same accounts:

- the same edge at idle, just before the storm: the figure the peak is compared with (goal:
  less than 150 MiB above it);
- one login at a time: what a login costs when nothing queues;
- the storm on an edge whose budget holds six checks, what the edge ran before it had a
  budget (each login took a thread of asyncio's default pool, six on two CPUs, and its
  memory as it came).

Resident memory is sampled with psutil every 10 ms, the edge process and its children added
up. Every login must answer 200 with an access token, or the benchmark fails.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.edge import EdgeServer, Figures, answer_json, concurrently
from benchmarks.orderload import on_a_stack_of_its_own
from conveyor.api.settings import ApiSettings
from conveyor.infra.settings import ServiceUrls

LOGINS = 200
ALONE = 20
REGISTERING_AT_ONCE = 8
# What the edge ran side by side before its hashing had a budget: asyncio's default thread
# pool, min(32, CPUs + 4) threads, six on the two-CPU machines the figures come from.
UNBOUNDED_HASHES = 6
GOAL_MIB = 150
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.01
SETTINGS = {
    # Every login of the run comes from this one address.
    "CONVEYOR_RATE_LIMIT_AUTH_PER_MINUTE": "100000000",
    # Exactly the storm in flight: none shed.
    "CONVEYOR_MAX_REQUESTS_IN_FLIGHT": str(LOGINS),
}


def resident_bytes(pid: int) -> int:
    """The resident memory of a process and its live descendants."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


@contextmanager
def peak_resident(pid: int) -> Iterator[list[int]]:
    """Samples ``resident_bytes(pid)`` while the block runs; the list holds the peak."""
    peak = [resident_bytes(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], resident_bytes(pid))

    sampler = threading.Thread(target=sample, name="peak-resident", daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@dataclass
class Storm:
    hashes_at_once: int
    idle_bytes: int
    peak_bytes: int
    logins: Figures
    alone: Figures | None

    @property
    def above_idle_mib(self) -> float:
        return (self.peak_bytes - self.idle_bytes) / MIB


async def _register(api: str, emails: list[str], password: str) -> None:
    addresses = iter(emails)
    async with aiohttp.ClientSession() as session:

        async def register() -> None:
            body = {"email": next(addresses), "name": "Storm shopper", "password": password}
            async with session.post(f"{api}/auth/register", json=body) as reply:
                await answer_json(reply, 201)

        await concurrently(register, len(emails), lanes=REGISTERING_AT_ONCE)


async def _storm(
    server: EdgeServer, emails: list[str], password: str, measure_alone: bool
) -> tuple[int, int, Figures, Figures | None]:
    """Idle memory, peak memory and latency of one login per address at once; then, when
    asked, of logins one at a time."""
    api = f"{server.url}/api/v1"
    assert server.launched.process is not None
    pid = server.launched.process.pid
    addresses = iter(emails)
    connector = aiohttp.TCPConnector(limit=LOGINS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def log_in(email: str) -> None:
            body = {"email": email, "password": password}
            async with session.post(f"{api}/auth/login", json=body) as reply:
                if not (await answer_json(reply, 200))["access_token"]:
                    raise RuntimeError(f"{email}: 200 without an access token")

        # One login first, so the idle figure is of a worker that has served one.
        await log_in(emails[0])
        await asyncio.sleep(1)
        idle = resident_bytes(pid)
        with peak_resident(pid) as peak:
            storm = await concurrently(lambda: log_in(next(addresses)), LOGINS, lanes=LOGINS)
        alone = None
        if measure_alone:
            alone = await concurrently(lambda: log_in(emails[0]), ALONE, lanes=1)
    return idle, peak[0], storm, alone


def _run_edge(
    urls: ServiceUrls, emails: list[str], password: str, budget_mib: int, first: bool
) -> Storm:
    log_path = Path(tempfile.mkdtemp(prefix="conveyor-bench-logins-")) / "edge.log"
    server = EdgeServer(
        urls,
        secrets.token_urlsafe(16),
        without_kafka=False,
        log_path=log_path,
        settings={**SETTINGS, "CONVEYOR_PASSWORD_HASHING_BUDGET_MIB": str(budget_mib)},
    )
    server.start()
    try:
        if first:
            asyncio.run(_register(f"{server.url}/api/v1", emails, password))
        idle, peak, storm, alone = asyncio.run(_storm(server, emails, password, first))
    finally:
        server.stop()
    memory_kib = ApiSettings.model_fields["password_hash_memory_kib"].default
    return Storm(budget_mib * 1024 // memory_kib, idle, peak, storm, alone)


def measure(urls: ServiceUrls) -> list[Storm]:
    """The storm on an edge with the default budget, then on one with the old six at once."""
    run = uuid.uuid4().hex[:8]
    emails = [f"storm-{n}-{run}@example.com" for n in range(LOGINS)]
    password = f"storm {secrets.token_urlsafe(12)}"
    defaults = ApiSettings.model_fields
    memory_mib = defaults["password_hash_memory_kib"].default // 1024
    budget_mib = defaults["password_hashing_budget_mib"].default
    return [
        _run_edge(urls, emails, password, budget_mib, first=True),
        _run_edge(urls, emails, password, UNBOUNDED_HASHES * memory_mib, first=False),
    ]


def run(console: Console, urls: ServiceUrls) -> None:
    console.print(f"logins: {LOGINS} accounts registered, then {LOGINS} logins at once ...")
    bounded, unbounded = measure(urls)
    assert bounded.alone is not None
    table = Table(
        title=f"A login storm: {LOGINS} logins at once on one edge worker (argon2id, "
        "64 MiB a check)"
    )
    table.add_column("checks at once", no_wrap=True)
    for column in ("logins/s", "p50", "p95", "p95 ÷ alone", "idle", "peak", "above idle"):
        table.add_column(column, justify="right", no_wrap=True)
    rows = [
        (f"{bounded.hashes_at_once} (the budget's default)", bounded),
        (f"{unbounded.hashes_at_once} (as before the budget)", unbounded),
    ]
    for label, storm in rows:
        table.add_row(
            label,
            f"{storm.logins.per_second:.1f}",
            f"{storm.logins.p50_ms:.0f}ms",
            f"{storm.logins.p95_ms:.0f}ms",
            f"{storm.logins.p95_ms / bounded.alone.p95_ms:.0f}",
            f"{storm.idle_bytes / MIB:.0f} MiB",
            f"{storm.peak_bytes / MIB:.0f} MiB",
            f"{storm.above_idle_mib:.0f} MiB",
        )
    console.print(table)
    verdict = "within" if bounded.above_idle_mib < GOAL_MIB else "OVER"
    console.print(
        f"one login alone: p50 {bounded.alone.p50_ms:.0f} ms, p95 {bounded.alone.p95_ms:.0f} ms "
        f"({bounded.alone.per_second:.1f}/s); every login answered 200 with a token. The "
        f"default budget's peak is {verdict} the goal of idle + {GOAL_MIB} MiB, "
        f"{bounded.above_idle_mib / unbounded.above_idle_mib:.2f} times the rise with six at once"
    )


def main() -> None:
    """``python -m benchmarks.logins``: on a stack of its own."""
    console = Console(width=120)
    on_a_stack_of_its_own("logins", console, lambda stack: run(console, stack.service_urls()))


if __name__ == "__main__":
    main()
