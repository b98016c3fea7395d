"""What durability costs: Conveyor's producer (acks=all, idempotent) against aiokafka's defaults.

Both send the same encoded PlaceOrder records to the same local broker, one awaited send at a
time (what the edge does per request) and in pipelined batches (what a processor does).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from conveyor.domain.codec import encode
from conveyor.domain.messages import OrderLine, PlaceOrder
from conveyor.domain.topics import ORDERS_COMMANDS
from conveyor.infra.kafka import create_producer
from conveyor.infra.settings import ServiceUrls

AWAITED_SENDS = 2_000
PIPELINED_SENDS = 20_000


def sample_record() -> tuple[bytes, bytes]:
    line = OrderLine(
        product_id=uuid.uuid4(), quantity=2, unit_price=Decimal("19.99"), subtotal=Decimal("39.98")
    )
    order = PlaceOrder(
        order_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        customer_email="ada@example.com",
        items=(line,),
        currency="EUR",
        total=Decimal("39.98"),
        payment_token="tok_visa",
    )
    record = encode("orders.commands", order)
    return record.key, record.value


async def _measure(producer: AIOKafkaProducer, topic: str) -> dict[str, float]:
    key, value = sample_record()
    await producer.start()
    try:
        for _ in range(200):  # warm-up: connections, metadata, producer id
            await producer.send_and_wait(topic, value, key=key)
        latencies = []
        began = time.perf_counter()
        for _ in range(AWAITED_SENDS):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, value, key=key)
            latencies.append(time.perf_counter() - sent)
        awaited_rate = AWAITED_SENDS / (time.perf_counter() - began)
        began = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for _ in range(PIPELINED_SENDS)]
        await asyncio.gather(*futures)
        pipelined_rate = PIPELINED_SENDS / (time.perf_counter() - began)
    finally:
        await producer.stop()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "awaited_per_s": awaited_rate,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "pipelined_per_s": pipelined_rate,
    }


async def new_topic(bootstrap: str, prefix: str) -> str:
    """A topic of the benchmark's own, partitioned like orders.commands; returns its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=ORDERS_COMMANDS.partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    return topic


async def _run(bootstrap: str) -> tuple[dict[str, float], dict[str, float]]:
    topic = await new_topic(bootstrap, "bench-producer")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        options: dict[str, Any] = {"bootstrap_servers": bootstrap}
        baseline = await _measure(AIOKafkaProducer(**options), topic)
        conveyor = await _measure(create_producer(bootstrap), topic)
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    return baseline, conveyor


def run(console: Console, urls: ServiceUrls) -> None:
    console.print("[bold]producer[/]: Conveyor's durable producer against aiokafka's defaults")
    baseline, conveyor = asyncio.run(_run(urls.kafka_bootstrap_servers))
    table = Table("measure", "aiokafka defaults", "conveyor producer", "ratio")
    for name, label in (
        ("awaited_per_s", "awaited sends / s"),
        ("p50_ms", "awaited send p50 (ms)"),
        ("p99_ms", "awaited send p99 (ms)"),
        ("pipelined_per_s", "pipelined sends / s"),
    ):
        table.add_row(
            label,
            f"{baseline[name]:,.1f}",
            f"{conveyor[name]:,.1f}",
            f"{conveyor[name] / baseline[name]:.2f}",
        )
    console.print(table)
