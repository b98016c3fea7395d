"""What the envelope and validation cost: the shared codec against plain json on the same data.

The baseline dumps and loads the same JSON document with the standard library and no
validation, which is the least any Kafka consumer of these records must do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from benchmarks.producer import sample_record
from conveyor.domain.codec import decode

ROUNDS = 20_000


def _rate(work: Callable[[], object]) -> float:
    for _ in range(500):
        work()
    began = time.perf_counter()
    for _ in range(ROUNDS):
        work()
    return ROUNDS / (time.perf_counter() - began)


def run(console: Console) -> None:
    key, value = sample_record()
    document = json.loads(value)
    baseline_encode = _rate(lambda: json.dumps(document).encode())
    baseline_decode = _rate(lambda: json.loads(value))
    conveyor_decode = _rate(lambda: decode("orders.commands", key, value))
    envelope = decode("orders.commands", key, value)
    conveyor_encode = _rate(lambda: envelope.model_dump_json().encode())
    console.print("[bold]codec[/]: PlaceOrder records, Conveyor's codec against plain json")
    table = Table("measure", "plain json / s", "conveyor codec / s", "ratio")
    for label, baseline, ours in (
        ("encode", baseline_encode, conveyor_encode),
        ("decode + validate", baseline_decode, conveyor_decode),
    ):
        table.add_row(label, f"{baseline:,.0f}", f"{ours:,.0f}", f"{ours / baseline:.2f}")
    console.print(table)
