"""A worker's GET /ready: 503 while it has no assignment or restores its tables, with the
restore's progress, and 200 once it processes (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.devstack.launched import Launched
from conveyor.devstack.settings import free_ports
from conveyor.infra.kafka import create_producer
from conveyor.streams.state import encode_entry
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow, pytest.mark.long]

# The inventory processor's holds table, as Faust names its changelog (`<group>-<table>-changelog`).
HOLDS_CHANGELOG = "conveyor-inventory-holds-changelog"
# Entries written straight to the changelog, each then deleted by a tombstone: the table
# ends as it was, but a fresh worker reads twice this many records to get there.
ENTRIES = 6_000


def ready(port: int) -> tuple[int, dict[str, Any]]:
    """The status and body of the worker's GET /ready."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


class Filler(BaseModel):
    number: int


async def fill_changelog(stack: RunningStack, entries: int = ENTRIES) -> None:
    """``entries`` as the table writes them (JSON keys, its entry format), then their
    tombstones."""
    producer = create_producer(stack.urls.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        sent = []
        for deleted in (False, True):
            for number in range(entries):
                partition = number % 6
                key = json.dumps(f"readiness-test-{number}").encode()
                value = None if deleted else encode_entry(Filler(number=number), None, partition)
                sent.append(
                    await producer.send(HOLDS_CHANGELOG, value, key=key, partition=partition)
                )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def test_a_running_worker_is_ready_with_its_partitions(workers: Workers) -> None:
    # The module's workers may have only just started (joining, restoring): it turns ready.
    status, body = eventually(
        lambda: ready(workers.workers["inventory"].metrics_port),
        "the running inventory worker answers ready",
        until=lambda answer: answer[0] == 200,
    )

    assert status == 200
    assert body["ready"] is True
    assert body["phase"] == "processing"
    # Alone in its group, it holds all six partitions of inventory.commands.
    assert body["partitions"] == 6
    assert body["restore"]["restored"] == body["restore"]["total"]


async def test_a_restoring_worker_is_not_ready_until_its_tables_are_back(
    workers: Workers, stack: RunningStack, tmp_path: Path
) -> None:
    await fill_changelog(stack)
    [port] = free_ports(1)
    environment = {
        **workers.environment(port),
        # A fresh state directory: the whole changelog is read again.
        "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
    }
    fresh = Launched(
        "inventory restoring",
        [sys.executable, "-m", "conveyor", "worker", "inventory"],
        tmp_path / "inventory.log",
        environment,
    )
    workers.stop("inventory")
    try:
        fresh.launch()
        seen: list[tuple[int, dict[str, Any]]] = []

        def processing() -> bool | None:
            assert fresh.running, fresh.log()
            try:
                seen.append(ready(port))
            except OSError:  # not listening yet
                return None
            return seen[-1][0] == 200

        # Asked often, to see the restore move between answers.
        eventually(
            processing,
            "the fresh inventory worker answers ready",
            interval=0.1,
            context=fresh.log,
        )
    finally:
        fresh.stop(grace_seconds=30)
        workers.start("inventory")

    not_ready = [body for status, body in seen if status == 503]
    assert not_ready, seen
    assert all(not body["ready"] for body in not_ready)
    assert {body["phase"] for body in not_ready} <= {"starting", "restoring", "rebalancing"}
    restoring = [body["restore"]["restored"] for body in not_ready if body["phase"] == "restoring"]
    # It answered while it restored, and each answer had read more of the changelog.
    assert len(set(restoring)) >= 2, not_ready
    assert restoring == sorted(restoring)
    _, body = seen[-1]
    assert body["phase"] == "processing"
    assert body["restore"]["restored"] == body["restore"]["total"] >= 2 * ENTRIES
    assert body["partitions"] == 6
    assert "restoring tables:" in fresh.log(200_000)
