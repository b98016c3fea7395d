"""Autoscaling by time to drain against a real control plane and Kafka, with a "processor" of
known speed: the test itself commits the inventory group's offsets at 10 records per second
against a known lag, so the rate the operator measures and the replicas it must choose are
known."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from conveyor.domain.messages import UpsertProduct
from conveyor.domain.topics import INVENTORY_COMMANDS, consumer_group
from conveyor.infra.publisher import Publisher
from tests.operator.test_operator import processor_when, running_processor
from tests.support.operator import Namespace, OperatorProcess
from tests.support.stack import RunningStack
from tests.support.waiting import eventually
from tests.support.workers import Workers

pytestmark = pytest.mark.long

INPUT = INVENTORY_COMMANDS.name
LAG = 2000
RECORDS_PER_COMMIT = 5
COMMITS_PER_SECOND = 2  # 10 records per second
TARGET_DRAIN_SECONDS = 60
MAX_REPLICAS = 4


def produce(bootstrap: str, records: int) -> None:
    """``records`` new products on inventory's input: lag for a stopped inventory group."""

    async def run() -> None:
        async with Publisher(bootstrap) as publisher:
            await asyncio.gather(
                *(
                    publisher.publish(
                        UpsertProduct(
                            product_id=product, sku=product.hex[:8], name="Lag", initial_stock=1
                        )
                    )
                    for product in (uuid.uuid4() for _ in range(records))
                )
            )

    asyncio.run(run())


def commit_at_a_known_rate(bootstrap: str, stop: threading.Event) -> None:
    """Moves the group's committed offsets forward by 5 records twice a second, partition
    after partition, as a processor of exactly that speed would (never past the end)."""

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=consumer_group("inventory"),
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(INPUT, p) for p in range(INVENTORY_COMMANDS.partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            at = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
            turn = 0
            while not stop.is_set():
                open_ones = [tp for tp in partitions if at[tp] < ends[tp]]
                if open_ones:
                    tp = open_ones[turn % len(open_ones)]
                    at[tp] = min(ends[tp], at[tp] + RECORDS_PER_COMMIT)
                    await consumer.commit({tp: at[tp]})
                    turn += 1
                await asyncio.sleep(1 / COMMITS_PER_SECOND)
        finally:
            await consumer.stop()

    asyncio.run(run())


def test_the_operator_scales_to_drain_the_lag_within_the_target_time(
    namespace: Namespace, operator: OperatorProcess, stack: RunningStack, workers: Workers
) -> None:
    bootstrap = stack.urls.kafka_bootstrap_servers
    autoscaling = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": MAX_REPLICAS,
        "targetDrainSeconds": TARGET_DRAIN_SECONDS,
    }
    running_processor(namespace, bootstrap, replicas=1, autoscaling=autoscaling)
    # The session's inventory worker is the group's only member: stopped, the test's own
    # committer is all the processing there is.
    workers.stop("inventory")
    stop = threading.Event()
    committer = threading.Thread(target=commit_at_a_known_rate, args=(bootstrap, stop))
    try:
        produce(bootstrap, LAG)
        committer.start()
        scaled = eventually(
            lambda: processor_when(
                namespace, "inventory", lambda found: found["spec"]["replicas"] > 1
            ),
            "the operator scales inventory up to drain the lag",
            context=operator.log,
        )
    finally:
        stop.set()
        if committer.is_alive():
            committer.join()
        workers.start("inventory")
    [event] = [e for e in namespace.events("inventory", "ScaledUp") if e["reason"] == "ScaledUp"]
    message = event["message"]
    found = re.search(
        r"1 -> (\d+) replicas: lag (\d+), rate ([\d.]+) records/s per replica, "
        rf"target drain {TARGET_DRAIN_SECONDS} s",
        message,
    )
    assert found is not None, message
    replicas, lag, rate = int(found[1]), int(found[2]), float(found[3])
    # The committer never commits faster than 10 records/s; the lag is what it left.
    assert 0 < rate <= RECORDS_PER_COMMIT * COMMITS_PER_SECOND + 0.5
    assert 0 < lag <= LAG
    # ceil(lag / (rate x target)) within maxReplicas: 2000 / (10 x 60) asks for 4.
    assert replicas == min(MAX_REPLICAS, math.ceil(lag / (rate * TARGET_DRAIN_SECONDS)))
    assert replicas == MAX_REPLICAS
    assert scaled["spec"]["replicas"] == replicas
    assert "expected restore" in message
    assert (
        operator.metric("conveyor_operator_processing_rate_per_replica", namespace=namespace.name)
        > 0
    )
