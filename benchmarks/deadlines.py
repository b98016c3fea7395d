"""What the orders processor's deadline sweep costs: its index in memory against a table walk.

Every second the orders processor finds the open orders whose deadline has come and counts
the pending ones by age (``conveyor_orders_pending``). It reads both from
``deadlines.OpenOrders``; the baseline does the same from the table itself, the least a
sweep without an index must do: read every saga entry and parse its JSON (no validation).
Both run over the same 10,000 open orders, their deadlines spread over the next two minutes
(so about one in 120 is due per sweep), beside as many finished sagas as the retention
keeps of a busy hour; both must find the same orders and the same counts.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from benchmarks.orderload import place_order
from conveyor.streams.deadlines import AGE_BUCKETS, OpenOrders
from conveyor.streams.processors.orders import SagaRecord, open_sagas
from conveyor.streams.saga import OrderSaga
from conveyor.streams.state import encode_entry

OPEN_ORDERS = 10_000
FINISHED_ORDERS = 50_000
DEADLINE_SECONDS = 120.0
SWEEPS = 20


def _saga(rng: random.Random, now: float, open_: bool) -> OrderSaga:
    order = place_order(uuid.uuid4(), [uuid.uuid4()])
    placed_at = now - rng.uniform(0, DEADLINE_SECONDS)
    if open_:
        return OrderSaga(order=order, placed_at=placed_at, deadline=placed_at + DEADLINE_SECONDS)
    return OrderSaga(order=order, placed_at=placed_at, phase="done", status="confirmed")


def _table(now: float) -> dict[str, bytes]:
    """Saga entries as the orders table stores them: open ones without expiry."""
    rng = random.Random(7)
    table = {}
    for index in range(OPEN_ORDERS + FINISHED_ORDERS):
        saga = _saga(rng, now, open_=index < OPEN_ORDERS)
        expires = None if saga.phase != "done" else now + 3600
        table[str(saga.order.order_id)] = encode_entry(SagaRecord(saga=saga), expires, 0)
    return table


def _walk(table: dict[str, bytes], now: float) -> tuple[set[str], dict[str, int]]:
    """The baseline sweep: every entry read and parsed."""
    due = set()
    counts = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
    for key, raw in table.items():
        saga = json.loads(raw)["v"]["saga"]
        if saga["phase"] == "done":
            continue
        if saga["deadline"] <= now:
            due.add(key)
        age = now - saga["placed_at"]
        for label, bound in AGE_BUCKETS:
            if age < bound:
                counts[label] += 1
                break
    return due, counts


def _per_sweep_ms(sweep: Callable[[float], object], start: float) -> float:
    began = time.perf_counter()
    for second in range(SWEEPS):
        sweep(start + second)
    return (time.perf_counter() - began) / SWEEPS * 1000


def run(console: Console) -> None:
    now = time.time()
    table = _table(now)
    index = OpenOrders()
    began = time.perf_counter()
    found = open_sagas(table.items(), "sagas", frozenset({0}))
    index.rebuild(found, now, DEADLINE_SECONDS)
    rebuild_ms = (time.perf_counter() - began) * 1000
    assert len(index) == OPEN_ORDERS

    # Correctness first, on a copy: the index finds what the walk finds.
    check = OpenOrders()
    check.rebuild(found, now, DEADLINE_SECONDS)
    later = now + 30
    walked_due, walked_counts = _walk(table, later)
    found_due = {key for key, _ in check.due(later)}
    assert found_due == walked_due, (len(found_due), len(walked_due))
    assert check.pending_by_age(later) == walked_counts, (
        check.pending_by_age(later),
        walked_counts,
    )

    def indexed(at: float) -> object:
        return index.due(at), index.pending_by_age(at)

    def walked(at: float) -> object:
        return _walk(table, at)

    baseline = _per_sweep_ms(walked, now + 1)
    ours = _per_sweep_ms(indexed, now + 1)
    console.print(
        f"[bold]deadline sweep[/]: {OPEN_ORDERS:,} open orders among "
        f"{OPEN_ORDERS + FINISHED_ORDERS:,} sagas, one sweep per second of deadlines"
    )
    table_out = Table("measure", "table walk", "index in memory", "ratio")
    table_out.add_row(
        "ms per sweep per 10,000 open orders",
        f"{baseline * 10_000 / OPEN_ORDERS:.2f}",
        f"{ours * 10_000 / OPEN_ORDERS:.2f}",
        f"{ours / baseline:.3f}",
    )
    table_out.add_row(
        f"index rebuild after an assignment: one walk of {OPEN_ORDERS + FINISHED_ORDERS:,} "
        "sagas, ms",
        "—",
        f"{rebuild_ms:.0f}",
        "",
    )
    console.print(table_out)
